"""Service-desk pages: the product catalogue (search by brand name, generic name or 国药准字 approval number)
and the answer templates. Everyone who sees tickets reads them; Cap.MANAGE_KNOWLEDGE writes."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from pharmacrm.core import access
from pharmacrm.core.form_saves import create_once, sent_again
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import knowledge
from .forms_conversation import ProductForm, TemplateForm
from .models import AnswerTemplate, Product

PAGE = 50


def _conflict_text() -> str:
    return _(
        "Someone else changed this record while you were editing it. Your input is kept: check, then save again."
    )


def _may_manage(user) -> bool:
    return access.can(user, Cap.MANAGE_KNOWLEDGE)


@login_required
@require_GET
def product_list(request):
    access.require(request.user, Cap.VIEW_TICKETS)
    q = (request.GET.get("q") or "").strip()[:100]
    show_inactive = request.GET.get("inactive") == "1" and _may_manage(request.user)
    page = Paginator(knowledge.products(request.user, q=q, include_inactive=show_inactive), PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "servicedesk/knowledge/product_list.html", {
        "page": page, "q": q, "show_inactive": show_inactive, "may_manage": _may_manage(request.user),
    })  # fmt: skip


def _product(user, pk: int) -> Product:
    product = Product.objects.filter(pk=pk).first()
    if product is None or (not product.active and not _may_manage(user)):
        raise Http404(_("No such product."))
    return product


@login_required
@require_GET
def product_detail(request, pk: int):
    access.require(request.user, Cap.VIEW_TICKETS)
    product = _product(request.user, pk)
    return render(request, "servicedesk/knowledge/product_detail.html",
                  {"product": product, "may_manage": _may_manage(request.user)})  # fmt: skip


def _save(request, form, instance, create, update, redirect_to, template_name, context_key: str, extra=None, *,
          model, list_name):
    """Shared POST handling of the product and template editors: service errors under the fields, a stale
    version → 409 with the input kept."""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            version = data.pop("version", None)
            token = data.pop("form_token", "")
            try:  # a new one once per form: sent again (a double click), it leads to what the first one created
                obj = (
                    create_once(request.user, token, lambda: create(request.user, data))
                    if instance is None
                    else update(request.user, instance, data, version=version)
                )
            except AlreadyCreated as e:
                return sent_again(request, model, e.pk, reverse(list_name),
                                  page_of=lambda x: reverse(redirect_to, kwargs={"pk": x.pk}))  # fmt: skip
            except ConflictError as e:
                form.data = form.data.copy()
                form.data["version"] = str(e.current_version)
                form.add_error(None, _conflict_text())
                status = 409
            except ValidationError as e:
                form.add_service_errors(e)
                status = 400
            else:
                messages.success(request, _("Saved."))
                return redirect(redirect_to, pk=obj.pk)
        else:
            status = 400
    return render(
        request, template_name, {"form": form, context_key: instance, **(extra or {})}, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def product_edit(request, pk: int | None = None):
    access.require(request.user, Cap.MANAGE_KNOWLEDGE)
    product = _product(request.user, pk) if pk is not None else None
    if request.method == "POST":
        form = ProductForm(request.POST)
    elif product is not None:
        form = ProductForm(
            initial={f: getattr(product, f) for f in knowledge.PRODUCT_FIELDS} | {"version": product.version}
        )
    else:
        form = ProductForm()
    return _save(request, form, product, knowledge.create_product, knowledge.update_product, "servicedesk:product",
                 "servicedesk/knowledge/product_form.html", "product",
                 model=Product, list_name="servicedesk:product-list")  # fmt: skip


@login_required
@require_GET
def template_list(request):
    access.require(request.user, Cap.VIEW_TICKETS)
    qs = AnswerTemplate.objects.select_related("category").order_by("name")
    if not _may_manage(request.user):
        qs = qs.filter(active=True)
    return render(request, "servicedesk/knowledge/template_list.html", {
        "templates": list(qs), "may_manage": _may_manage(request.user), "placeholders": knowledge.PLACEHOLDERS,
    })  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def template_edit(request, pk: int | None = None):
    access.require(request.user, Cap.MANAGE_KNOWLEDGE)
    tpl = None
    if pk is not None:
        tpl = AnswerTemplate.objects.filter(pk=pk).first()
        if tpl is None:
            raise Http404(_("No such template."))
    if request.method == "POST":
        form = TemplateForm(request.POST)
    elif tpl is not None:
        form = TemplateForm(initial={"name": tpl.name, "category": tpl.category_id, "language": tpl.language,
                                     "body": tpl.body, "active": tpl.active, "version": tpl.version})  # fmt: skip
    else:
        form = TemplateForm()
    return _save(request, form, tpl, knowledge.create_template, knowledge.update_template,
                 "servicedesk:answer-template-edit", "servicedesk/knowledge/template_form.html", "tpl",
                 {"placeholders": knowledge.PLACEHOLDERS},
                 model=AnswerTemplate, list_name="servicedesk:answer-template-list")  # fmt: skip


urlpatterns: list = [  # included by urls.py under /service/
    path("knowledge/products/", product_list, name="product-list"),
    path("knowledge/products/new/", product_edit, name="product-create"),
    path("knowledge/products/<int:pk>/", product_detail, name="product"),
    path("knowledge/products/<int:pk>/edit/", product_edit, name="product-edit"),
    path("knowledge/templates/", template_list, name="answer-template-list"),
    path("knowledge/templates/new/", template_edit, name="answer-template-create"),
    path("knowledge/templates/<int:pk>/edit/", template_edit, name="answer-template-edit"),
]


def panel_context(request, ticket) -> dict:
    """Nothing on the ticket page: the conversation panel offers the templates and shows the product."""
    return {}
