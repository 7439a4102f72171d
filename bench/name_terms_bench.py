"""CPU of the search terms of people's names: `search.name_terms(name, person=True)` over N generated names (200,000
by default; 2–3 characters, the common surnames with about 8 % that read otherwise or hold ü: 曾, 单, 区, 吕 …), the
readings' caches cleared before each of three rounds. No database is touched. Run it beside another checkout of the
code (PYTHONPATH) to compare: `python bench/name_terms_bench.py [N]`."""

import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
import django  # noqa: E402

django.setup()

import pharmacrm  # noqa: E402
from pharmacrm.customers import readings, search  # noqa: E402

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆"
    "汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤单解仇区朴查盖乐"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉梅凤云莲真环雪荣爱妹香月莺媛瑞凡佳嘉琼勤珍贞莉娣"
    "璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦"
    "昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思"
)


def main(n: int = 200_000) -> None:
    rng = random.Random(7)
    names = ["".join([rng.choice(SURNAMES), *rng.choices(GIVEN, k=rng.choice((1, 2)))]) for _ in range(n)]
    print(pharmacrm.__file__, n, "names,", len(set(names)), "distinct")
    for rnd in range(3):
        for cached in (readings.syllables, readings._char_reading):
            cached.cache_clear()
        start = time.process_time()
        terms = sum(len(search.name_terms(name, person=True)) for name in names)
        print(f"round {rnd}: {time.process_time() - start:.2f} s CPU, {terms} terms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
