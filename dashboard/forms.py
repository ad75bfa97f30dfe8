"""The create-session form: the API's validation rules, with a form's error messages."""

import json
import uuid
from typing import Any

from django import forms

from sessions_app.api.serializers import SessionCreateSerializer


def parse_context(text: str) -> dict[str, Any]:
    """A JSON object as typed, or free text kept as notes; raises ValueError for broken JSON."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"This looks like JSON but does not parse: {exc.msg}.") from exc
        if isinstance(value, dict):
            return value
    return {"notes": text}


class SessionCreateForm(forms.Form):
    problem_statement = forms.CharField(
        label="The decision you face",
        required=False,  # the API serializer below reports a missing one, with its message
        strip=False,
        help_text="Between 10 and 10,000 characters. Say what you must decide and why it is hard.",
        widget=forms.Textarea(
            attrs={"rows": 6, "maxlength": 10_000, "required": True, "autofocus": True}
        ),
    )
    problem_context = forms.CharField(
        label="Context (optional)",
        required=False,
        strip=False,
        help_text="Facts the board should know: plain text, or a JSON object. At most 50 KB.",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    max_rounds = forms.IntegerField(
        label="Maximum discussion rounds (optional)",
        required=False,
        min_value=1,
        max_value=10,
        help_text="1 to 10; 6 when left empty.",
    )
    # A retried submit (double click, reload after a timeout) finds the session it already made.
    idempotency_key = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", f"dashboard:{uuid.uuid4()}")
        self.session_data: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payload: dict[str, Any] = {"problem_statement": cleaned.get("problem_statement") or ""}
        try:
            payload["problem_context"] = parse_context(cleaned.get("problem_context") or "")
        except ValueError as exc:
            self.add_error("problem_context", str(exc))
        if cleaned.get("max_rounds") is not None:
            payload["max_rounds"] = cleaned["max_rounds"]
        serializer = SessionCreateSerializer(data=payload)
        if serializer.is_valid():
            self.session_data = dict(serializer.validated_data)
        else:
            for name, messages in serializer.errors.items():
                if name in self.errors:
                    continue
                for message in messages if isinstance(messages, list) else [messages]:
                    self.add_error(name if name in self.fields else None, str(message))
        return cleaned

    def retry_key(self) -> str | None:
        """The idempotency key this form was rendered with."""
        return (self.cleaned_data.get("idempotency_key") or "").strip() or None
