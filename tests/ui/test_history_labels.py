"""History shows what people read: labels, not stored codes."""


def test_the_history_shows_choice_labels_and_region_names(client_for, xiehe):
    page = client_for("manager").get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert "Grade III-A" in page and "Chaoyang District, Beijing" in page
    assert "→ <span class=\"after\">3A</span>" not in page
