from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from sessions_app.models import AlertRule, User


class NewSessionForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="What is this meeting?")
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

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the session a title.")
        return title


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["label", "prompt", "target", "is_enabled"]
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

    def expires_at(self) -> datetime | None:
        delta = self.EXPIRY[self.cleaned_data["expires"]]
        return timezone.now() + delta if delta else None
