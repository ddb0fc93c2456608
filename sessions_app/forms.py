from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from sessions_app.models import AlertRule, BriefItem, CaptureSession, RTStream, SearchEntry, User


class NewSessionForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="What is this meeting?")
    series = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"list": "series-names", "autocomplete": "off"}),
        help_text=(
            "Meetings of one series share their action items: a later meeting links an item "
            "it raises again to the open one. Leave empty to group by the title."
        ),
    )
    audio_prompt = forms.CharField(
        label="Audio insights prompt",
        widget=forms.Textarea(attrs={"rows": 2}),
        initial="Extract key decisions and action items",
        max_length=2000,
        required=False,
        help_text="What to pull out of what is said. Leave empty for no audio insights.",
    )
    visual_prompt = forms.CharField(
        label="Screen description prompt",
        widget=forms.Textarea(attrs={"rows": 2}),
        initial="Describe what is on screen",
        max_length=2000,
        required=False,
        help_text="What to describe about the screen. Leave empty for no visual index.",
    )
    alert_rules = forms.ModelMultipleChoiceField(
        queryset=AlertRule.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Alert rules to watch for in this meeting.",
    )

    def __init__(self, *args: object, owner: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        rules = AlertRule.objects.filter(owner=owner, is_enabled=True)
        self.fields["alert_rules"].queryset = rules
        self.fields["alert_rules"].initial = list(rules)
        self.owner = owner

    def series_names(self) -> list[str]:
        """The owner's series so far, offered as the field's suggestions."""
        names = self.owner.capture_sessions.exclude(series="").values_list("series", flat=True)
        return sorted(set(names), key=str.casefold)

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the session a title.")
        return title

    def clean_series(self) -> str:
        return " ".join(self.cleaned_data["series"].split())


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "label", "prompt", "target", "is_enabled"]
        widgets = {"prompt": forms.Textarea(attrs={"rows": 3})}
        labels = {"target": "Watch", "is_enabled": "Enabled"}

    def __init__(self, *args: object, owner: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_label(self) -> str:
        label = self.cleaned_data["label"]
        clash = AlertRule.objects.filter(owner=self.owner, label=label)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("You already have a rule with this label.")
        return label

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if len(prompt) < 5:
            raise forms.ValidationError("Describe what to watch for in a few words.")
        if len(prompt) > 2000:
            raise forms.ValidationError("Keep the prompt under 2,000 characters.")
        return prompt


class SpeakerForm(forms.Form):
    speaker_label = forms.CharField(
        label="Speaker name",
        max_length=100,
        required=False,
        help_text="Leave empty for the default.",
    )


class ShareLinkForm(forms.Form):
    EXPIRY = {
        "never": None,
        "1h": timedelta(hours=1),
        "1d": timedelta(days=1),
        "7d": timedelta(days=7),
    }
    expires = forms.ChoiceField(
        label="Expires",
        choices=[("never", "Never"), ("1h", "In 1 hour"), ("1d", "In 1 day"), ("7d", "In 7 days")],
        initial="never",
    )
    can_ask = forms.BooleanField(
        label="May ask questions",
        required=False,
        help_text="Holders of the link may ask the meeting questions (rate-limited).",
    )

    def expires_at(self) -> datetime | None:
        delta = self.EXPIRY[self.cleaned_data["expires"]]
        return timezone.now() + delta if delta else None


# --- history and search (GET forms: a bad value is reported and ignored, never a 500) ------


class LenientGetForm(forms.Form):
    """A GET form whose fields each apply only if valid: the page shows the errors and goes on
    without the fields that failed."""

    def value(self, name: str) -> object:
        """The cleaned value, or nothing for a field that did not validate."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) if name not in self.errors else None


class HistoryFilterForm(LenientGetForm):
    """Filters for the session list. Every field is optional; an invalid one is shown as an
    error next to it and the list is shown without that filter."""

    SORTS = {
        "newest": ("-created_at", "-id"),
        "oldest": ("created_at", "id"),
        "title": ("title", "id"),
        "alerts": ("-alert_count", "-created_at", "-id"),
        "longest": ("-duration", "-created_at", "-id"),
    }

    status = forms.ChoiceField(
        choices=[("", "Any status"), *CaptureSession.Status.choices], required=False
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    alerts = forms.ChoiceField(
        label="Alerts",
        choices=[("", "With or without"), ("yes", "With alerts"), ("no", "Without alerts")],
        required=False,
    )
    whose = forms.ChoiceField(
        label="Whose",
        choices=[("", "Mine and shared"), ("mine", "Mine"), ("shared", "Shared with me")],
        required=False,
    )
    sort = forms.ChoiceField(
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("title", "Title"),
            ("alerts", "Most alerts"),
            ("longest", "Longest"),
        ],
        required=False,
    )

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            # Neither end of an impossible range is applied: the list is shown unfiltered.
            self.add_error("date_from", "“From” must be on or before “To”.")
            self.add_error("date_to", "“To” must be on or after “From”.")
        return data


class SearchForm(LenientGetForm):
    q = forms.CharField(label="Search", required=False, strip=True, max_length=10_000)
    meaning = forms.BooleanField(label="By meaning", required=False)
    kind = forms.MultipleChoiceField(choices=SearchEntry.Kind.choices, required=False)
    channel = forms.MultipleChoiceField(choices=RTStream.Kind.choices, required=False)
    session = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=())
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: object, session_ids: list[int], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Only sessions the asker may view can be picked: any other id is "not a choice".
        self.fields["session"].choices = [(str(pk), str(pk)) for pk in session_ids]


class ActionFilterForm(LenientGetForm):
    """Filters for the action-items page; like the session list's, an invalid one is shown
    and left out."""

    whose = forms.ChoiceField(
        label="Whose",
        choices=[("", "Mine and shared"), ("mine", "Mine"), ("shared", "Shared with me")],
        required=False,
    )
    owner = forms.CharField(label="Owner", max_length=100, required=False)
    status = forms.ChoiceField(
        label="Status",
        choices=[("open", "Open"), ("done", "Done"), ("all", "Open and done")],
        required=False,
    )
    series = forms.ChoiceField(label="Series", choices=(), required=False)

    def __init__(self, *args: object, series: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["series"].choices = [("", "Any series"), *((name, name) for name in series)]


class ActionStatusForm(forms.Form):
    status = forms.ChoiceField(choices=BriefItem.Status.choices)
