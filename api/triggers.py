"""``/api/triggers/``: CRUD for triggers in the caller's teams, plus ``test``, ``snooze``,
``enable`` and ``disable``.

Who may do what:

- any member of a team sees its triggers, creates triggers in it and runs ``test``;
- only the trigger's owner or an admin/owner of its team updates, deletes, snoozes,
  enables or disables it (403 for other members);
- a trigger in a team the caller does not belong to does not exist for them (404), and
  ``team`` only accepts the caller's teams (400);
- only an admin of the team's organization marks a trigger ``critical`` (or unmarks it):
  its pushes go through quiet hours and do-not-disturb (400 on ``critical`` for anyone else);
  what a critical trigger matches and whom it reaches (``kind``, ``config``, ``channels``,
  ``subscribers``) is then changed by such an admin only (400 on those fields for its
  owner), so nobody widens a pass an admin gave to one rule.

Validation errors (400) have the API's one shape (:mod:`api.errors`): a flat object whose
keys are paths into the request body and whose values are lists of messages::

    {"config.filters[0].operator": ["unknown operator 'like'; use one of exact, …"],
     "channels[1].type": ["unknown channel type 'sms'; use one of in_app, email, …"],
     "delivery.window_seconds": ["is required for rollup"],
     "config.window_minutes": ["must be a whole number of at least 1 and at most 10080, …"],
     "subscribers[0]": ["user 42 is not a member of this team"]}

A plain field keeps DRF's usual key (``"name": ["This field is required."]``); errors that
belong to no field are under ``non_field_errors``. ``config`` paths are the ones
:func:`notifications.triggers.validate_config` reports, so the API, the admin and the
consumer all name a bad filter the same way. Every number and list has a bound, named in
its error (``notifications.triggers``: counts, windows, intervals, thresholds, filter
values, lists of filters, values, resource types, channels and subscribers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.apps import apps
from django.utils import timezone
from django.utils.functional import lazy
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.errors import FIELD_ERRORS, FlatErrorsMixin, flat_errors
from api.permissions import CallerTeamField, TeamScopedViewSet, is_org_admin
from notifications import services
from notifications.channels import registry
from notifications.models import Trigger
from notifications.triggers import (
    KINDS,
    MAX_CHANNELS,
    MAX_ROLLUP_ITEMS,
    MAX_SUBSCRIBERS,
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    InvalidTrigger,
    Mode,
    TriggerIndex,
    compile_trigger,
    is_stream,
    validate_config,
)
from workspace.models import Membership, Role

EDITOR_ROLES = (Role.ADMIN, Role.OWNER)
CRITICAL_REACH = ("kind", "config", "channels", "subscribers")
"""What a critical trigger matches and whom it reaches: an organization admin's to change."""
MAX_TEST_EVENTS = 100


def _choices_message(noun: str, choices: Iterable[str]) -> str:
    return f"unknown {noun} '{{input}}'; use one of " + ", ".join(choices)


_KIND_CHOICES_MESSAGE = lazy(lambda: _choices_message("kind", KINDS), str)()
"""Read when a kind is refused, so it lists every declared kind."""


# --- body parts -------------------------------------------------------------------------


class TriggerChannelSerializer(serializers.Serializer):
    """One destination: ``{"type": "slack", "target": "#alerts"}``.

    ``target`` is where the message goes: the Slack channel (required for Slack), a fixed
    email address instead of each subscriber's own, the webhook URL (refused when its host
    resolves to a private address, as the channel itself would), or the Telegram chat id.
    Credentials (bot token, signing secret) come from the organization's channel of that
    type (``/api/channels/``).
    """

    # Types, and the format of each one's target, are the channels' declarations.
    type = serializers.ChoiceField(
        choices=registry.CHOICES,
        error_messages={"invalid_choice": _choices_message("channel type", registry.TYPES)},
    )
    target = serializers.CharField(required=False, max_length=200)

    def validate(self, attrs):
        kind = attrs.get("type")
        if kind is None:  # a PATCH skips "required" checks in nested bodies
            raise ValidationError({"type": ["This field is required."]})
        if problem := registry.target_problem(kind, attrs.get("target")):
            raise ValidationError({"target": [problem]})
        return attrs


class TriggerDeliverySerializer(serializers.Serializer):
    """How matches reach people: ``instant``; ``rollup`` (one summary per window of
    ``window_seconds``, stretched to at most ``max_window_seconds``, closed early once
    ``max_items`` matches arrived; the summary keeps at most 5 sample lines); or
    ``digest`` (no message of its own: an in-app notification for each subscriber,
    gathered into their next digest if they get digests; the trigger's other channels
    send nothing)."""

    MODES = tuple(mode.value for mode in Mode)
    ROLLUP_ONLY = ("window_seconds", "max_window_seconds", "max_items")

    mode = serializers.ChoiceField(
        choices=MODES,
        default="instant",
        error_messages={"invalid_choice": _choices_message("delivery mode", MODES)},
    )
    window_seconds = serializers.IntegerField(
        required=False, min_value=MIN_WINDOW_SECONDS, max_value=MAX_WINDOW_SECONDS
    )
    max_window_seconds = serializers.IntegerField(
        required=False, min_value=MIN_WINDOW_SECONDS, max_value=MAX_WINDOW_SECONDS
    )
    max_items = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ROLLUP_ITEMS)

    def validate(self, attrs):
        attrs = {"mode": "instant", **attrs}  # a PATCH skips defaults in nested bodies
        errors: dict[str, list[str]] = {}
        if attrs["mode"] == "rollup":
            window = attrs.get("window_seconds")
            if window is None:
                errors["window_seconds"] = ["is required for rollup"]
            elif attrs.get("max_window_seconds", window) < window:
                errors["max_window_seconds"] = [f"must be at least window_seconds ({window})"]
        else:
            for key in self.ROLLUP_ONLY:
                if key in attrs:
                    errors[key] = [f"only applies to rollup, not {attrs['mode']}"]
        if errors:
            raise ValidationError(errors)
        return attrs


class UserIdsField(serializers.ListField):
    """Subscribers as a list of user ids in, and out."""

    child = serializers.IntegerField(min_value=1)

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_SUBSCRIBERS, **kwargs)

    def to_representation(self, manager):
        return sorted(user.pk for user in manager.all())


class TriggerDestinationSerializer(serializers.Serializer):
    """A trigger's ``channels`` and ``delivery``, and the one place their rules live: the
    API's :class:`TriggerSerializer` declares them by inheriting from this, and the admin
    checks them with it (``Trigger.clean``), so both refuse the same bodies with the same
    messages."""

    channels = TriggerChannelSerializer(
        many=True, required=False, allow_empty=False, max_length=MAX_CHANNELS
    )
    delivery = TriggerDeliverySerializer(required=False)

    def validate_channels(self, channels):
        seen: dict[tuple[str, str], int] = {}
        errors = {}
        for index, channel in enumerate(channels):
            key = (channel["type"], channel.get("target", ""))
            if key in seen:
                errors[index] = [f"duplicates channels[{seen[key]}]"]
            seen.setdefault(key, index)
        if errors:
            raise ValidationError(errors)
        return [dict(channel) for channel in channels]

    def validate_delivery(self, delivery):
        return dict(delivery)


def destination_errors(channels: Any, delivery: Any) -> dict[str, list[str]]:
    """What the API answers about these ``channels`` and ``delivery``, as body-path errors
    (``{"channels[0].target": [...]}``); empty when it would accept them."""
    serializer = TriggerDestinationSerializer(data={"channels": channels, "delivery": delivery})
    return {} if serializer.is_valid() else flat_errors(serializer.errors)


class TriggerSerializer(TriggerDestinationSerializer, serializers.ModelSerializer):
    """A trigger as the API reads and writes it. ``config`` is checked against ``kind`` by
    :func:`validate_config`; ``channels`` and ``delivery`` by the rules the admin applies
    too; ``subscribers`` must be members of the trigger's team; an empty subscriber list
    means the owner alone."""

    team = CallerTeamField()
    subscribers = UserIdsField(required=False)

    class Meta:
        model = Trigger
        fields = ["id", *services.TRIGGER_FIELDS, "owner", "created_at", "updated_at"]
        read_only_fields = ["owner", "created_at", "updated_at"]
        extra_kwargs = {"kind": {"error_messages": {"invalid_choice": _KIND_CHOICES_MESSAGE}}}

    def to_internal_value(self, data):
        """Report config errors together with field errors, so a form learns everything
        wrong with one submit (DRF skips ``validate`` when a field fails)."""
        try:
            return super().to_internal_value(data)
        except ValidationError as exc:
            errors = dict(exc.detail) if isinstance(exc.detail, dict) else {}
            kind = data.get("kind", self.instance.kind if self.instance else None)
            config = data.get("config", self.instance.config if self.instance else {})
            if "kind" not in errors and "config" not in errors and isinstance(config, dict):
                errors.update(config_errors(kind, config))
            raise ValidationError(errors) from exc

    def validate(self, attrs):
        trigger = self.instance
        errors: dict[str, list[str]] = {}
        team = attrs.get("team", trigger.team if trigger else None)
        if trigger is not None and team != trigger.team:
            errors["team"] = ["a trigger cannot move to another team; create a new one there"]
        kind = attrs.get("kind", trigger.kind if trigger else None)
        config = attrs.get("config", trigger.config if trigger else {})
        if "kind" in attrs or "config" in attrs:
            errors.update(config_errors(kind, config) or _reference_errors(team, config))
        was_critical = trigger.critical if trigger else False
        organization_id = team.organization_id if team else None
        if not is_org_admin(self.context["request"].user, organization_id):
            if attrs.get("critical", was_critical) != was_critical:
                errors["critical"] = [
                    "only an admin of the organization can mark a trigger critical or unmark it"
                ]
            if was_critical:
                for name in _reach_changes(trigger, attrs):
                    errors[name] = [
                        "this trigger is critical (it passes quiet hours): only an admin of "
                        "the organization changes what it matches and whom it reaches"
                    ]
        if "subscribers" in attrs:
            errors.update(_subscriber_errors(team, attrs["subscribers"]))
            attrs["subscribers"] = list(dict.fromkeys(attrs["subscribers"]))
        if errors:
            raise ValidationError(errors)
        return attrs


def _reach_changes(trigger: Trigger, attrs: dict[str, Any]) -> list[str]:
    """The fields of :data:`CRITICAL_REACH` this body changes (a PUT repeating them does not)."""
    changed = []
    for name in CRITICAL_REACH:
        if name not in attrs:
            continue
        if name == "subscribers":
            now = set(trigger.subscribers.values_list("pk", flat=True))
            if set(attrs[name]) != now:
                changed.append(name)
        elif attrs[name] != getattr(trigger, name):
            changed.append(name)
    return changed


def config_errors(kind: str, config: Any) -> dict[str, list[str]]:
    """What :func:`validate_config` finds wrong, as body-path errors.

    Also refuses ``filters`` on kinds that do not take them: ``validate_config`` does not
    look at them there and ``compile_trigger`` ignores them, so a user would believe in a
    condition that never applies.
    """
    try:
        validate_config(kind, config)
    except InvalidTrigger as exc:
        return {path: [message] for path, message in exc.errors.items()}
    if not KINDS[kind].filters and config.get("filters"):
        takers = " and ".join(k for k, spec in KINDS.items() if spec.filters)
        return {"config.filters": [f"only {takers} triggers take filters, not {kind}"]}
    return {}


def _config_references() -> dict[str, Any]:
    """Config keys naming a resource (the kinds' ``resource`` form fields), which must be
    one of the trigger's team, and the model of each."""
    return {
        field.key: apps.get_model(field.resource)
        for spec in KINDS.values()
        for section in spec.form
        for field in section.fields
        if field.type == "resource"
    }


def _reference_errors(team, config: dict[str, Any]) -> dict[str, list[str]]:
    """``config.<key>`` for each resource id that is not of ``team``: the same message
    whether it belongs to another tenant or to nobody (a valid config holds whole ids)."""
    if team is None:
        return {}
    return {
        f"config.{key}": [f"{model._meta.verbose_name} {config[key]} does not exist in this team"]
        for key, model in _config_references().items()
        if key in config and not model.objects.filter(team=team, pk=config[key]).exists()
    }


def _subscriber_errors(team, user_ids: list[int]) -> dict[str, list[str]]:
    """``subscribers[i]`` for each id that is not a member of ``team``. The message is the
    same whether or not such a user exists, so it reveals nothing about other tenants."""
    if team is None:
        return {}
    members = set(
        Membership.objects.filter(team=team, user_id__in=user_ids).values_list("user_id", flat=True)
    )
    return {
        f"subscribers[{index}]": [f"user {user_id} is not a member of this team"]
        for index, user_id in enumerate(user_ids)
        if user_id not in members
    }


# --- actions' bodies --------------------------------------------------------------------


class TriggerSampleSerializer(serializers.Serializer):
    event = serializers.CharField(max_length=200)
    properties = serializers.DictField(required=False, default=dict)


class TriggerTestSerializer(serializers.Serializer):
    """Either ``{"events": [{"event", "properties"}, …]}`` or one ``{"event", "properties"}``."""

    events = TriggerSampleSerializer(
        many=True, required=False, allow_empty=False, max_length=MAX_TEST_EVENTS
    )
    event = serializers.CharField(required=False, max_length=200)
    properties = serializers.DictField(required=False)

    def validate(self, attrs):
        if "events" in attrs and "event" in attrs:
            raise ValidationError("send either events or one event, not both")
        if "events" in attrs:
            return {"events": attrs["events"]}
        if "event" not in attrs:
            raise ValidationError({"event": ["send events: [{event, properties}] or one event"]})
        return {"events": [{"event": attrs["event"], "properties": attrs.get("properties", {})}]}


class TriggerTestResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    matches = serializers.BooleanField()


class TriggerSnoozeSerializer(serializers.Serializer):
    until = serializers.DateTimeField(allow_null=True, help_text="ISO 8601; null un-snoozes.")

    def validate_until(self, until: datetime | None) -> datetime | None:
        if until is not None and until <= timezone.now():
            raise ValidationError("must be in the future (send null to un-snooze)")
        return until


def trigger_test(
    *, trigger: Trigger, samples: Iterable[Mapping[str, Any]], now: datetime
) -> list[bool]:
    """Whether each sample event satisfies ``trigger``'s condition, regardless of whether
    the trigger is enabled or snoozed. Pure: nothing is stored or sent. For ``event_count``
    a match means the event counts toward the threshold."""
    compiled = compile_trigger(
        id=trigger.pk,
        team_id=trigger.team_id,
        kind=trigger.kind,
        name=trigger.name,
        config=trigger.config,
    )
    index = TriggerIndex([compiled])
    return [
        bool(
            index.match(
                team_id=trigger.team_id,
                event_name=sample["event"],
                properties=sample.get("properties") or {},
                now=now,
            )
        )
        for sample in samples
    ]


# --- the viewset ------------------------------------------------------------------------


def can_edit_trigger(user, trigger: Trigger) -> bool:
    """The owner, or an admin/owner of the trigger's team."""
    if trigger.owner_id == user.pk:
        return True
    return Membership.objects.filter(
        user=user, team_id=trigger.team_id, role__in=EDITOR_ROLES
    ).exists()


class CanEditTrigger(permissions.BasePermission):
    message = "Only the trigger's owner or an admin of its team can change it."
    read_only_actions = frozenset({"retrieve", "list", "test"})

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS or view.action in self.read_only_actions:
            return True
        return can_edit_trigger(request.user, obj)


@extend_schema_view(
    create=extend_schema(responses={201: TriggerSerializer, 400: FIELD_ERRORS}),
    update=extend_schema(responses={200: TriggerSerializer, 400: FIELD_ERRORS, 403: None}),
    partial_update=extend_schema(responses={200: TriggerSerializer, 400: FIELD_ERRORS, 403: None}),
    destroy=extend_schema(responses={204: None, 403: None}),
)
class TriggerViewSet(FlatErrorsMixin, TeamScopedViewSet):
    """Triggers in the caller's teams. See the module docstring for permissions and the
    shape of validation errors."""

    queryset = (
        Trigger.objects.select_related("team")
        .prefetch_related("subscribers")
        .order_by("team_id", "name", "id")
    )
    serializer_class = TriggerSerializer
    permission_classes = [permissions.IsAuthenticated, CanEditTrigger]

    def perform_create(self, serializer):
        serializer.instance = services.trigger_create(
            owner=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.trigger_update(
            trigger=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.trigger_delete(trigger=instance)

    def _trigger_response(self, trigger: Trigger) -> Response:
        return Response(self.get_serializer(trigger).data)

    @extend_schema(
        request=TriggerTestSerializer,
        responses={200: TriggerTestResultSerializer(many=True), 400: FIELD_ERRORS},
        description="Evaluate sample events against the trigger's condition. Nothing is "
        "stored or sent. Only for event, event_count and activity triggers.",
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        trigger = self.get_object()
        if not is_stream(trigger.kind):
            raise ValidationError(
                {"kind": [f"{trigger.kind} triggers are checked on a schedule, not on events"]}
            )
        body = TriggerTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if errors := config_errors(trigger.kind, trigger.config):  # it may predate today's rules
            raise ValidationError(errors)
        samples = body.validated_data["events"]
        matches = trigger_test(trigger=trigger, samples=samples, now=timezone.now())
        return Response([{"index": i, "matches": m} for i, m in enumerate(matches)])

    @extend_schema(
        request=TriggerSnoozeSerializer,
        responses={200: TriggerSerializer, 400: FIELD_ERRORS, 403: None},
        description="Silence the trigger until a time (null clears the snooze).",
    )
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        trigger = self.get_object()
        body = TriggerSnoozeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.trigger_snooze(trigger=trigger, until=body.validated_data["until"])
        return self._trigger_response(trigger)

    @extend_schema(request=None, responses={200: TriggerSerializer, 403: None})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        return self._set_enabled(True)

    @extend_schema(request=None, responses={200: TriggerSerializer, 403: None})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        return self._set_enabled(False)

    def _set_enabled(self, enabled: bool) -> Response:
        trigger = self.get_object()
        services.trigger_set_enabled(trigger=trigger, enabled=enabled)
        return self._trigger_response(trigger)
