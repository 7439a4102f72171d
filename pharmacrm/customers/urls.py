"""Customer pages: lists, search, 360 view, forms, duplicates and merge, import and export."""

from django.urls import path

from . import views, views_import

app_name = "customers"

urlpatterns = [
    path("search/", views.search_view, name="search"),
    path("institutions/", views.institution_list, name="institutions"),
    path("institutions/new/", views.institution_create, name="institution-create"),
    path("institutions/<int:pk>/", views.institution_detail, name="institution"),
    path("institutions/<int:pk>/edit/", views.institution_edit, name="institution-edit"),
    path("institutions/<int:pk>/delete/", views.institution_delete, name="institution-delete"),
    path("people/", views.person_list, name="people"),
    path("people/new/", views.person_create, name="person-create"),
    path("people/<int:pk>/", views.person_detail, name="person"),
    path("people/<int:pk>/edit/", views.person_edit, name="person-edit"),
    path("people/<int:pk>/delete/", views.person_delete, name="person-delete"),
    path("people/<int:pk>/reveal/", views.person_reveal, name="person-reveal"),
    path("people/<int:pk>/consents/new/", views.consent_create, name="consent-create"),
    path("duplicates/", views.duplicate_list, name="duplicates"),
    path("merge/<str:kind>/<int:survivor>/<int:duplicate>/", views.merge_view, name="merge"),
    path("duplicates/<str:kind>/<int:first>/<int:second>/different/", views.not_duplicates, name="not-duplicates"),
    path("regions/", views.region_options, name="region-options"),
    path("import/", views_import.import_start, name="import"),
    path("import/template/<str:target>.<str:fmt>", views_import.import_template, name="import-template"),
    path("import/<int:pk>/", views_import.import_detail, name="import-detail"),
    path("import/<int:pk>/progress/", views_import.import_progress, name="import-progress"),
    path("import/<int:pk>/confirm/", views_import.import_confirm, name="import-confirm"),
    path("import/<int:pk>/cancel/", views_import.import_cancel, name="import-cancel"),
    path("import/<int:pk>/errors.<str:fmt>", views_import.import_errors, name="import-errors"),
    path("export/<str:target>.<str:fmt>", views_import.export_view, name="export"),
]
