"""The form renderer: Django's own form and widget templates in their Jinja2 version, everything else (a package's
widget with a Django template only, django-filter's range widgets in the API's browsable forms) as Django templates.

Every form field of every page is rendered through a template, and a select's every option through one more. With
Django's template language that was a quarter to a third of the CPU time of a page with a filter bar or a form (the
institution list: 35 → 26 ms, the new-institution form: 37 → 24 ms; docs/benchmarks.md, session 46). Django ships the
same templates for Jinja2, which renders them several times faster; the HTML is the same but for white space."""

from __future__ import annotations

from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist
from django.utils.functional import cached_property


class FormRenderer(BaseRenderer):
    @cached_property
    def _jinja2(self) -> Jinja2:
        return Jinja2()

    @cached_property
    def _django(self) -> DjangoTemplates:
        return DjangoTemplates()

    def get_template(self, template_name: str):
        try:
            return self._jinja2.get_template(template_name)
        except TemplateDoesNotExist:
            return self._django.get_template(template_name)
