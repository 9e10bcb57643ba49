"""The rendering gate: the one place where the provider's operators and sensors render templates.

Airflow renders a task's templated fields by one of two code paths: an unmapped task through
``BaseOperator.render_template_fields``, a mapped one (``partial().expand()`` or
``expand_kwargs()``) through ``MappedOperator.render_template_fields``, which builds the unmapped
task and renders it. Both end in ``_do_render_template_fields`` of the task being rendered, on
Airflow 3 and on 2.11, so :class:`RenderingGate` overrides exactly that method and every path
passes through it (``dag.test()``, a real worker, task groups alike). Its rules:

1. **Data is never code.** A field renders only when its value is what the DAG author wrote in the
   DAG file (:func:`authored_fields`): the constructor's arguments of an unmapped task, the
   ``partial()`` arguments (and the DAG's ``default_args``) of a mapped one. A value Airflow
   resolved is data and passes byte for byte: an ``expand()`` or ``expand_kwargs()`` value (every
   mapped input, even one written as a literal list), an ``XComArg``, and whatever an author's
   expression returns (``{{ ti.xcom_pull(...) }}``, ``{{ dag_run.conf['x'] }}``,
   ``{{ params.x }}``, ``{{ var.value.x }}``: Jinja never renders its own output again). So
   ``{{ conn.vapi_default.password }}`` typed into a CRM field reaches Vapi as that text.
2. **What the author wrote renders once**, by Airflow's own ``render_template`` (so
   ``render_template_as_native_obj``, ``template_ext`` files and ``XComArg`` resolution work as
   everywhere), with Vapi's ``{{placeholders}}`` kept for Vapi in the operators that send prompts
   (:func:`~airflow_provider_vapi.rendering.templating.protect_vapi_placeholders`). A field of
   :attr:`RenderingGate.native_fields` written as one ``{{ ... }}`` expression renders to the Python
   value it names (the ids of a mapped upstream stay a list), and is not rendered again.
3. **A template that cannot render is bad input**: the task fails at once (no retry) with
   ``AirflowFailException`` naming the task and the field; nothing was sent to Vapi.
4. **Secrets are masked before anything is stored**: every credential-shaped value of the rendered
   fields (:mod:`airflow_provider_vapi.secrets`) goes to Airflow's masker before Airflow writes the
   Rendered tab, mapped or not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_vapi.rendering.templating import (
    airflow_names,
    is_one_expression,
    protect_vapi_placeholders,
    render_native,
)
from airflow_provider_vapi.secrets import find_secret_values, mask

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

#: Errors an author's expression raises by itself (``{{ 1 + 'a' }}``, ``{{ params.missing.x }}``):
#: as final as a syntax error, since the same DAG file renders the same way on every try.
_EXPRESSION_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError)


def _same(value: Any, written: Any) -> bool:
    """Whether ``value`` is what the author wrote (the very object, or an equal one)."""
    if value is written:
        return True
    try:
        return bool(value == written)
    except Exception:  # an odd object whose == raises is not the author's text
        return False


def _mapped_origin(task: Any) -> Any:
    """The ``MappedOperator`` an unmapped task was built from (it keeps its place in the DAG)."""
    try:
        dag = task.dag
    except Exception:  # no DAG (Airflow raises on some versions): nothing to look up
        return None
    origin = getattr(dag, "task_dict", {}).get(getattr(task, "task_id", None))
    return origin if origin is not None and hasattr(origin, "partial_kwargs") else None


def _default_args(task: Any) -> Mapping[str, Any]:
    """The DAG's and the task group's ``default_args`` (the group's win), as unmapping applies them."""
    merged: dict[str, Any] = dict(getattr(getattr(task, "dag", None), "default_args", None) or {})
    merged.update(getattr(getattr(task, "task_group", None), "default_args", None) or {})
    return merged


def authored_fields(task: Any, names: Iterable[str]) -> frozenset[str]:
    """The templated fields of ``task`` that hold what the DAG author wrote (rendered); the others
    hold data (never rendered).

    An unmapped task was built from the DAG file: every field is the author's (an ``XComArg`` in
    one is resolved by Airflow to data). A task unmapped from a ``MappedOperator`` was built from
    the author's ``partial()`` arguments plus this map index's mapped values: a field is the
    author's when it still holds the ``partial()`` argument (or the ``default_args`` entry) of that
    name; a mapped value (``expand``, or an ``expand_kwargs`` row, which may override ``partial``)
    is data. When the origin cannot be found every field counts as data: nothing renders, which
    shows in the Rendered tab and can never leak.
    """
    names = tuple(names)
    if not getattr(task, "_BaseOperator__from_mapped", False):
        return frozenset(names)
    origin = _mapped_origin(task)
    if origin is None:
        return frozenset()
    written: dict[str, Any] = {**_default_args(task), **dict(origin.partial_kwargs)}
    return frozenset(
        name for name in names if name in written and _same(getattr(task, name, None), written[name])
    )


class RenderingGate:
    """Operator mixin (put it before ``BaseOperator``): the provider's one rendering gate.

    :attr:`native_fields`: fields rendered to a Python value when the author wrote one ``{{ }}``
    expression. :attr:`keeps_vapi_placeholders`: whether a ``{{ ... }}`` that is not Airflow's is
    Vapi's (kept for Vapi) rather than an error. :meth:`rendered_secrets` and :meth:`after_render`
    are the operator's hooks.
    """

    template_fields: Sequence[str]
    template_ext: Sequence[str]
    task_id: str
    native_fields: ClassVar[frozenset[str]] = frozenset()
    keeps_vapi_placeholders: ClassVar[bool] = False

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
        **kwargs: Any,
    ) -> None:
        """Airflow's per-field loop, reached on every rendering path: renders the author's fields
        once, leaves data alone, fails bad templates for good, then masks the secrets."""
        fields = tuple(template_fields)
        authored = authored_fields(parent, fields)
        env = jinja_env or self.get_template_env()  # type: ignore[attr-defined]
        for name in fields:
            value = getattr(parent, name, None)
            if name not in authored or value is None:
                continue
            setattr(parent, name, self._render_field(name, value, context, env, seen_oids))
        if parent is self:
            self.after_render()
            mask(self.rendered_secrets())

    def _render_field(
        self, name: str, value: Any, context: Context, env: jinja2.Environment, seen_oids: set[int]
    ) -> Any:
        import jinja2

        try:
            if callable(value):  # Airflow's callable template fields
                return value(context=context, jinja_env=env)
            if name in self.native_fields and isinstance(value, str) and is_one_expression(value):
                return render_native(value.strip(), context, env)
            return self.render_template(value, context, env, seen_oids)
        except (jinja2.TemplateError, *_EXPRESSION_ERRORS) as exc:
            from airflow.providers.common.compat.sdk import AirflowFailException

            raise AirflowFailException(
                f"Task {self.task_id}: the templated parameter {name!r} does not render "
                f"({type(exc).__name__}: {exc}); nothing was sent to Vapi. Fix the Airflow "
                "expression in the DAG file (Vapi placeholders such as {{name}} pass through on "
                "their own; data from XCom, expand or conf is never rendered)."
            ) from exc

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Airflow's ``render_template``, with Vapi's placeholders protected in every string of
        the author's value (nested ones too: Airflow recurses through this method)."""
        if (
            self.keeps_vapi_placeholders
            and isinstance(content, str)
            and not content.endswith(tuple(self.template_ext))
        ):
            env = jinja_env or self.get_template_env()  # type: ignore[attr-defined]
            content = protect_vapi_placeholders(content, airflow_names(context, env))
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]

    # -- the operator's hooks -------------------------------------------------------------------

    def after_render(self) -> None:
        """Called once the fields are rendered (normalise what they resolved to)."""

    def rendered_secrets(self) -> Collection[str]:
        """The secret values of the rendered fields, for the masker (default: found by key name in
        every templated field)."""
        return find_secret_values({name: getattr(self, name, None) for name in self.template_fields})
