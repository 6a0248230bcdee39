"""Pure survey-dispatch rules: whom to survey, through which contact point, when, and in what words.

No I/O here: no database, network, settings or clock. The caller passes the rules and `now`.
The one impure helper is `new_token`, because a survey link must be unguessable.

Every "no" carries a `SuppressionReason` and a French sentence, so an administrator can read why
a user was not surveyed. Those sentences never contain an email or a phone number: they travel
downstream in `invitation suppressed` events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from contracts import questionnaire
from contracts.events import Channel, ContactClosed, SuppressionReason, SurveyChannel
from contracts.sites import SiteClock, site_clock

# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rules:
    """Effective rules for one contact: network defaults overlaid by the site's rules.

    They are data an administrator changes; construction validates them, so a bad rule fails
    when it is written or loaded, not in the middle of a send.
    """

    sampling_rate: float = 1.0
    surveyed_channels: frozenset[str] | None = None  # None = every channel
    excluded_channels: frozenset[str] = frozenset()
    surveyed_motifs: frozenset[str] | None = None  # None = every motif
    excluded_motifs: frozenset[str] = frozenset()
    fatigue_days: int = 30
    delay_minutes: int = 10
    reminder_hours: int = 48
    reminder_channels: frozenset[str] = frozenset({SurveyChannel.EMAIL.value})
    expiry_days: int = 7
    email_uses_sms_window: bool = True
    timezone: str = "Europe/Paris"
    holiday_subdivision: str | None = None  # None = metropolitan France; "GP", "RE"... overseas
    window_start_hour: int = 8
    window_end_hour: int = 20  # sends allowed in [start, end) local time, Monday to Saturday
    # No SMS (nor windowed e-mail) on Sundays and public holidays; a network may lift it, and
    # the end-to-end tests do, since they run on whatever day the clock says.
    rest_on_sundays_and_holidays: bool = True
    sampling_salt: str = ""
    questionnaire_version: str | None = None  # None = the service's default version
    # motif -> version, over `questionnaire_version` for that motif's contacts
    motif_questionnaires: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_rules(self)

    @classmethod
    def from_mapping(
        cls, network: Mapping[str, Any], site: Mapping[str, Any] | None, *,
        clock: SiteClock | None = None,
    ) -> Rules:  # fmt: skip
        """Rules from JSON-like mappings (lists for sets); site keys override network keys.

        `clock` is the site's default clock (contracts.sites.site_clock: the overseas regions
        by site id or network): it applies when no rule sets `timezone` or
        `holiday_subdivision`."""
        defaults = {} if clock is None else _clock_rules(clock)
        merged = {**defaults, **network, **(site or {})}
        unknown = sorted(merged.keys() - _RULE_PARSERS.keys())
        if unknown:
            raise ValueError(f"unknown rule keys: {', '.join(unknown)}")
        return cls(**{key: _RULE_PARSERS[key](key, value) for key, value in merged.items()})


def effective_rules(
    network_rules: Mapping[str, Any], own_rules: Mapping[str, Any] | None, *,
    network: str, site_id: str,
) -> Rules:  # fmt: skip
    """A site's effective rules: its own over its network's, over its default clock."""
    return Rules.from_mapping(network_rules, own_rules, clock=site_clock(site_id, network))


def _clock_rules(clock: SiteClock) -> dict[str, Any]:
    return {"timezone": clock.timezone, "holiday_subdivision": clock.holiday_subdivision}


RulesRows = Mapping[tuple[str, str], Any]  # (network, site_id) -> stored JSON; "*" and ""
# stand for every network and for a network's defaults


def rules_problem(rows: RulesRows, *, changed: tuple[str, str]) -> str | None:
    """Why the stored rules, once `changed` is written, would not combine for some site, or
    None. Every combination the change takes part in is checked: a site's own rules against
    its network; a network's defaults against each of its sites; the defaults of every
    network ("*") against everything. Each rule set may be valid alone and the pair not
    (a site's `window_end_hour: 16` under a network's `window_start_hour: 17`)."""
    network, site_id = changed
    defaults = rows.get(("*", ""), {})
    networks = sorted({net for net, _ in rows if net != "*"} | ({network} - {"*"}))
    checks: list[tuple[str, str, str]] = []  # (network, site_id, how to name it)
    if network == "*":
        checks.append(("*", "", "the defaults of every network"))
    for net in networks if network == "*" else [network]:
        if network == "*" or not site_id:
            checks.append((net, "", f"the defaults of network {net!r}"))
            sites = sorted(site for n, site in rows if n == net and site)
            checks += [(net, site, f"site {site!r}") for site in sites]
        else:
            checks.append((net, site_id, f"site {site_id!r}"))
    for net, site, name in checks:
        try:
            base = {**defaults, **(rows.get((net, ""), {}) if net != "*" else {})}
            clock = site_clock(site, net) if site and net != "*" else None
            Rules.from_mapping(base, rows.get((net, site)) if site else None, clock=clock)
        except (ValueError, TypeError) as error:
            return f"{name}: {error}"
    return None


def _check_rules(rules: Rules) -> None:
    if not 0.0 <= rules.sampling_rate <= 1.0:  # also refuses NaN
        raise ValueError("sampling_rate must be between 0 and 1")
    for name in ("fatigue_days", "delay_minutes"):
        if getattr(rules, name) < 0:
            raise ValueError(f"{name} must be >= 0")
    for name in ("reminder_hours", "expiry_days"):
        if getattr(rules, name) < 1:
            raise ValueError(f"{name} must be >= 1")
    if not 0 <= rules.window_start_hour < rules.window_end_hour <= 24:
        raise ValueError("the send window needs 0 <= window_start_hour < window_end_hour <= 24")
    _check_known("channels", rules.surveyed_channels or frozenset(), _CONTACT_CHANNELS)
    _check_known("channels", rules.excluded_channels, _CONTACT_CHANNELS)
    _check_known("reminder channels", rules.reminder_channels, _SURVEY_CHANNELS)
    _zone(rules.timezone)
    _holiday_calendar(rules.holiday_subdivision)
    for version in [rules.questionnaire_version, *rules.motif_questionnaires.values()]:
        if version is not None and not questionnaire.is_known(version):
            raise ValueError(questionnaire.unknown_version_message(version))


_CONTACT_CHANNELS = frozenset(channel.value for channel in Channel)
_SURVEY_CHANNELS = frozenset(channel.value for channel in SurveyChannel)


def _check_known(what: str, values: frozenset[str], known: frozenset[str]) -> None:
    # A typo in an admin's channel list would otherwise silently survey nobody, or everybody.
    unknown = sorted(values - known)
    if unknown:
        expected = ", ".join(sorted(known))
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (expected one of {expected})")


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _as_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _as_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _as_optional_str(key: str, value: Any) -> str | None:
    return None if value is None else _as_str(key, value)


def _as_set(key: str, value: Any) -> frozenset[str]:
    # A bare string is refused: frozenset("sms") would be {"s", "m"}.
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{key} must be a list of strings")
    return frozenset(_as_str(key, item) for item in value)


def _as_optional_set(key: str, value: Any) -> frozenset[str] | None:
    return None if value is None else _as_set(key, value)


def _as_str_map(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be an object of strings")
    return {_as_str(key, name): _as_str(key, item) for name, item in value.items()}


_RULE_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "sampling_rate": _as_float,
    "surveyed_channels": _as_optional_set,
    "excluded_channels": _as_set,
    "surveyed_motifs": _as_optional_set,
    "excluded_motifs": _as_set,
    "fatigue_days": _as_int,
    "delay_minutes": _as_int,
    "reminder_hours": _as_int,
    "reminder_channels": _as_set,
    "expiry_days": _as_int,
    "email_uses_sms_window": _as_bool,
    "timezone": _as_str,
    "holiday_subdivision": _as_optional_str,
    "window_start_hour": _as_int,
    "window_end_hour": _as_int,
    "rest_on_sundays_and_holidays": _as_bool,
    "sampling_salt": _as_str,
    "questionnaire_version": _as_optional_str,
    "motif_questionnaires": _as_str_map,
}


# --------------------------------------------------------------------------- eligibility


def questionnaire_version(rules: Rules, motif: str, *, default: str) -> str:
    """The version an invitation asks: the motif's own, else the rules', else the default."""
    return rules.motif_questionnaires.get(motif) or rules.questionnaire_version or default


def is_sampled(contact_id: str, rate: float, salt: str = "") -> bool:
    """Deterministic from the contact id, so a replayed event gets the same answer."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256((salt + contact_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def eligibility(contact: ContactClosed, rules: Rules) -> SuppressionReason | None:
    """Channel, then motif, then sampling: the cheapest and most explainable reasons first."""
    if not _included(contact.channel.value, rules.surveyed_channels, rules.excluded_channels):
        return SuppressionReason.CHANNEL_EXCLUDED
    if not _included(contact.motif, rules.surveyed_motifs, rules.excluded_motifs):
        return SuppressionReason.MOTIF_EXCLUDED
    if not is_sampled(contact.contact_id, rules.sampling_rate, rules.sampling_salt):
        return SuppressionReason.NOT_SAMPLED
    return None


def _included(value: str, surveyed: frozenset[str] | None, excluded: frozenset[str]) -> bool:
    return (surveyed is None or value in surveyed) and value not in excluded


# --------------------------------------------------------------------------- contact points


@dataclass(frozen=True)
class ContactPoint:
    channel: SurveyChannel
    address: str  # normalised email (lower-cased domain) or E.164 phone number


def contact_point(contact: ContactClosed) -> ContactPoint | SuppressionReason:
    """The preferred channel when given; the other one only when the preferred one is missing.

    A preferred address that is given but unusable is reported as such, rather than silently
    surveying the user on a channel they did not choose.
    """
    addresses = {SurveyChannel.EMAIL: contact.email, SurveyChannel.SMS: contact.mobile_phone}
    preferred = contact.preferred_channel
    other = SurveyChannel.SMS if preferred is SurveyChannel.EMAIL else SurveyChannel.EMAIL
    for channel in (preferred, other):
        raw = (addresses[channel] or "").strip()
        if raw:
            return _validated_point(channel, raw)
    return SuppressionReason.NO_CONTACT_POINT


def _validated_point(channel: SurveyChannel, raw: str) -> ContactPoint | SuppressionReason:
    if channel is SurveyChannel.EMAIL:
        email = normalize_email(raw)
        return SuppressionReason.INVALID_EMAIL if email is None else ContactPoint(channel, email)
    phone = normalize_mobile(raw)
    return SuppressionReason.INVALID_PHONE if phone is None else ContactPoint(channel, phone)


_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*\Z")
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_TOP_LEVEL_DOMAIN = re.compile(r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\Z")  # refuses IP addresses
# Reserved names (RFC 2606, RFC 6761): mail sent there never reaches anybody.
_UNDELIVERABLE_SUFFIXES = (".invalid", ".test", ".localhost", ".example")


def normalize_email(raw: str) -> str | None:
    """The address with its domain lower-cased (and IDNA-encoded), or None when unusable.

    The local part keeps its case (RFC 5321 lets servers treat it as case-sensitive) and must be
    plain ASCII, because not every SMTP relay accepts SMTPUTF8.
    """
    address = raw.strip()
    if len(address) > 254 or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None or len(local) > 64 or not _LOCAL_PART.match(local):
        return None
    return f"{local}@{ascii_domain}"


def _ascii_domain(domain: str) -> str | None:
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    if not _TOP_LEVEL_DOMAIN.match(labels[-1]) or ascii_domain.endswith(_UNDELIVERABLE_SUFFIXES):
        return None
    return ascii_domain


# Regions of the French numbering plans: metropolitan France and overseas.
_FRENCH_MOBILE_REGIONS = frozenset(
    {"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"}
)
# CRMs often store overseas numbers in national format (0690..., 0692...), which is not a valid
# metropolitan number: each territory's plan is tried in turn. BL and MF share Guadeloupe's.
_NATIONAL_PLANS = ("FR", "GP", "MQ", "GF", "RE", "YT", "PM", "NC", "PF", "WF")
_PHONE_CHARACTERS = re.compile(r"[0-9+().\s/-]+\Z")  # no letters: phonenumbers maps them to digits


def normalize_mobile(raw: str) -> str | None:
    """The E.164 form of a valid French (metropolitan or overseas) mobile number, else None."""
    if not _PHONE_CHARACTERS.match(raw):
        return None
    plans = ("FR",) if raw.lstrip().startswith("+") else _NATIONAL_PLANS
    for region in plans:
        number = _parse_phone(raw, region)
        if number is not None and _is_french_mobile(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _parse_phone(raw: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None


def _is_french_mobile(number: phonenumbers.PhoneNumber) -> bool:
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        and phonenumbers.region_code_for_number(number) in _FRENCH_MOBILE_REGIONS
    )


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: SuppressionReason | None = None
    detail: str = ""  # a French sentence explaining the decision; never personal data
    point: ContactPoint | None = None


def decide(
    contact: ContactClosed,
    rules: Rules,
    *,
    already_handled: bool,
    opted_out: bool,
    last_invited_at: datetime | None,
    now: datetime,
) -> Decision:
    """Duplicate, eligibility, opt-out, fatigue, contact point: the first "no" wins."""
    _require_aware(now, "now")
    if already_handled:
        return _suppressed(
            SuppressionReason.DUPLICATE_CONTACT,
            "Contact déjà traité : une seule enquête par contact, même si l'événement est rejoué",
        )
    ineligible = eligibility(contact, rules)
    if ineligible is not None:
        return _suppressed(ineligible, _ineligibility_detail(ineligible, contact, rules))
    if opted_out or contact.opted_out:
        return _suppressed(SuppressionReason.OPTED_OUT, _opt_out_detail(opted_out))
    if last_invited_at is not None and in_fatigue_window(last_invited_at, now, rules):
        return _suppressed(SuppressionReason.FATIGUE, _fatigue_detail(last_invited_at, rules))
    point = contact_point(contact)
    if isinstance(point, SuppressionReason):
        return _suppressed(point, _CONTACT_POINT_DETAILS[point])
    return Decision(send=True, detail=_send_detail(point, contact), point=point)


def in_fatigue_window(last_invited_at: datetime, now: datetime, rules: Rules) -> bool:
    """True while fewer than `fatigue_days` have passed since the last invitation.

    Exactly N days later the user may be invited again. An invitation dated after `now` (one
    already scheduled, or clock skew between replicas) counts as recent.
    """
    _require_aware(last_invited_at, "last_invited_at")
    return rules.fatigue_days > 0 and now - last_invited_at < timedelta(days=rules.fatigue_days)


def _suppressed(reason: SuppressionReason, detail: str) -> Decision:
    return Decision(send=False, reason=reason, detail=detail)


def _ineligibility_detail(reason: SuppressionReason, contact: ContactClosed, rules: Rules) -> str:
    if reason is SuppressionReason.CHANNEL_EXCLUDED:
        return f"Canal « {contact.channel.value} » non enquêté pour ce site"
    if reason is SuppressionReason.MOTIF_EXCLUDED:
        return f"Motif « {contact.motif} » non enquêté pour ce site"
    return (
        "Contact non retenu par l'échantillonnage "
        f"(taux de {_format_number(rules.sampling_rate * 100)} %)"
    )


def _opt_out_detail(opted_out_here: bool) -> str:
    if opted_out_here:
        return "L'usager a demandé à ne plus être sollicité"
    return "Le CRM indique que l'usager refuse d'être sollicité"


def _fatigue_detail(last_invited_at: datetime, rules: Rules) -> str:
    # The date as the site's staff would read it, in the site's time zone.
    local_day = last_invited_at.astimezone(_zone(rules.timezone)).strftime("%d/%m/%Y")
    return f"Déjà sollicité le {local_day} (délai de {_days(rules.fatigue_days)})"


_CONTACT_POINT_DETAILS = {
    SuppressionReason.NO_CONTACT_POINT: "Ni courriel ni téléphone mobile fourni par le CRM",
    SuppressionReason.INVALID_EMAIL: "Courriel invalide ou domaine ne pouvant recevoir de courriel",
    SuppressionReason.INVALID_PHONE: (
        "Numéro invalide : un mobile de France métropolitaine ou d'outre-mer est attendu"
    ),
}

_CHANNEL_NAMES = {SurveyChannel.EMAIL: "courriel", SurveyChannel.SMS: "SMS"}


def _send_detail(point: ContactPoint, contact: ContactClosed) -> str:
    detail = f"Invitation par {_CHANNEL_NAMES[point.channel]}"
    if point.channel is not contact.preferred_channel:
        detail += f" (pas de {_CHANNEL_NAMES[contact.preferred_channel]} fourni)"
    return detail


def _days(count: int) -> str:
    return f"{count} jour" if count == 1 else f"{count} jours"


def _format_number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


# --------------------------------------------------------------------------- when to send


def first_send_time(closed_at: datetime, channel: SurveyChannel, rules: Rules) -> datetime:
    """After the delay (not while the user is still on the line), within the channel's window."""
    _require_aware(closed_at, "closed_at")
    return _within_window(closed_at + timedelta(minutes=rules.delay_minutes), channel, rules)


def reminder_time(sent_at: datetime, channel: SurveyChannel, rules: Rules) -> datetime | None:
    """When to remind, or None: no reminder on this channel, or it would come after expiry."""
    _require_aware(sent_at, "sent_at")
    if channel.value not in rules.reminder_channels:
        return None
    moment = _within_window(sent_at + timedelta(hours=rules.reminder_hours), channel, rules)
    return moment if moment < expiry_time(sent_at, rules) else None


def expiry_time(sent_at: datetime, rules: Rules) -> datetime:
    _require_aware(sent_at, "sent_at")
    return (sent_at + timedelta(days=rules.expiry_days)).astimezone(UTC)


def link_validity(remaining: timedelta, *, reminder: bool = False) -> str:
    """The mail's words for how long its survey link works: an invitation's whole expiry rule
    (`Rules.expiry_days`), a reminder's time left, rounded down so it never promises more."""
    days = remaining // timedelta(days=1)
    hours = remaining // timedelta(hours=1)
    if days >= 1:
        amount = f"{days} jour{'s' if days > 1 else ''}"
    elif hours >= 1:
        amount = f"{hours} heure{'s' if hours > 1 else ''}"
    else:
        amount = "moins d'une heure"
    return f"valable encore {amount}" if reminder else f"valable {amount}"


def _within_window(moment: datetime, channel: SurveyChannel, rules: Rules) -> datetime:
    if channel is SurveyChannel.SMS or rules.email_uses_sms_window:
        return next_allowed_time(moment, rules)
    return moment.astimezone(UTC)


def next_allowed_time(moment: datetime, rules: Rules) -> datetime:
    """`moment` itself (in UTC) when sending is allowed then, else the start of the next window.

    Days and hours are counted in the site's local time, so daylight-saving changes move the
    window with the clocks on the wall. The result is an aware UTC datetime.
    """
    if is_allowed_time(moment, rules):
        return moment.astimezone(UTC)
    local = moment.astimezone(_zone(rules.timezone))
    day = local.date() if local.hour < rules.window_start_hour else local.date() + timedelta(days=1)
    while not _is_sending_day(day, rules):  # ends: public holidays never fill a whole week
        day += timedelta(days=1)
    return _window_start(day, rules)


def is_allowed_time(moment: datetime, rules: Rules) -> bool:
    """Monday to Saturday, in [start, end) local hours, not a public holiday of the territory."""
    _require_aware(moment, "moment")
    local = moment.astimezone(_zone(rules.timezone))
    in_hours = rules.window_start_hour <= local.hour < rules.window_end_hour
    return in_hours and _is_sending_day(local.date(), rules)


def _is_sending_day(day: date, rules: Rules) -> bool:
    if not rules.rest_on_sundays_and_holidays:
        return True
    return day.weekday() != 6 and day not in _holiday_calendar(rules.holiday_subdivision)


def _window_start(day: date, rules: Rules) -> datetime:
    # Should the start hour fall in a spring-forward gap, fold=0 maps it to the transition
    # instant, which is the first existing local moment of that hour: still the earliest allowed.
    start = datetime.combine(day, time(rules.window_start_hour), tzinfo=_zone(rules.timezone))
    return start.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone: {name!r}") from error


# The ISO 3166 code of French Guiana is GF; the holidays library knows it as GY or 973.
_SUBDIVISION_ALIASES = {"GF": "973"}


@cache
def _holiday_calendar(subdivision: str | None) -> holidays.HolidayBase:
    """French public holidays of a territory; cached, since each site's rules ask again."""
    code = _SUBDIVISION_ALIASES.get(subdivision, subdivision) if subdivision else None
    try:
        return holidays.country_holidays("FR", subdiv=code)
    except NotImplementedError as error:
        raise ValueError(f"unknown French subdivision: {subdivision!r}") from error


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


# --------------------------------------------------------------------------- identifiers


def pseudonymize(user_ref: str, key: bytes) -> str:
    """HMAC-SHA256 of the CRM reference: stable for fatigue and opt-out, not reversible."""
    if not key:
        raise ValueError("the pseudonym key must not be empty")  # else a dictionary reverses it
    return hmac.new(key, user_ref.encode("utf-8"), hashlib.sha256).hexdigest()


def new_token() -> str:
    """96 random bits, URL-safe, 16 characters: short enough for one SMS, too many to guess."""
    return secrets.token_urlsafe(12)


def token_digest(token: str) -> str:
    """Only the digest is stored and published, so a leaked table or event opens no survey."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- opt-out


def optout_token(invitation_id: str, key: bytes) -> str:
    """The invitation's own opt-out secret, never its survey token (a List-Unsubscribe link is
    read by mail providers): an HMAC of the invitation id, 128 bits, URL-safe, 22 characters.

    Derived rather than random so that only its digest needs storing: the sender recomputes it.
    """
    if not key:
        raise ValueError("the opt-out key must not be empty")
    mac = hmac.new(key, b"optout-link:" + invitation_id.encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:16]).decode("ascii").rstrip("=")


def optout_address(address: str, *, case_insensitive_local_part: bool) -> str:
    """The form of a contact point an opt-out is recorded and matched under.

    The domain is always case-insensitive (already lower-cased by `normalize_email`); the local
    part as the provider treats it: every major provider ignores its case. Phones are E.164.
    """
    if "@" not in address:
        return address
    local, _, domain_part = address.rpartition("@")
    if case_insensitive_local_part:
        local = local.lower()
    return f"{local}@{domain_part.lower()}"


_STOP_WORDS = frozenset({"stop", "stopsms", "arret", "arretsms", "desabonner", "desinscription"})


def is_stop_reply(text: str) -> bool:
    """An SMS reply asking to hear no more: STOP, « Stop », « s t o p », ARRÊT... (letters only:
    case, accents, spaces and punctuation do not matter)."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(char for char in decomposed if char.isalnum()).casefold()
    return letters in _STOP_WORDS


# --------------------------------------------------------------------------- SMS text

SMS_SEGMENT_SEPTETS = 160

# 3GPP TS 23.038 default alphabet. 0x09 is the capital Ç: a lower-case ç is not in it.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # sent as ESC + character: two septets each
_GSM7_SUBSTITUTES = {
    "œ": "oe", "Œ": "OE", "’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"',
    "–": "-", "—": "-",
}  # fmt: skip
_SMS_CALL = "votre avis en 1 minute : "
_SMS_STOP = " Répondez STOP pour ne plus recevoir ces SMS."
_MIN_SITE_SEPTETS = 4  # below "Ab." a truncated site name says nothing: leave it out


def gsm7_length(text: str) -> int:
    """Septets needed to send `text` in the GSM-7 alphabet; ValueError for other characters."""
    length = 0
    for char in text:
        if char in _GSM7_BASIC:
            length += 1
        elif char in _GSM7_EXTENSION:
            length += 2
        else:
            raise ValueError(f"not a GSM-7 character: {char!r}")
    return length


def to_gsm7(text: str) -> str:
    """`text` rewritten in GSM-7 (ê → e, œ → oe, « » → "), one line; unmappable characters go.

    One character outside GSM-7 would switch the whole SMS to UCS-2 and its 70-character segments.
    """
    rewritten = "".join(_gsm7_char(char) for char in text)
    return " ".join(rewritten.split())


def _gsm7_char(char: str) -> str:
    if char in _GSM7_BASIC or char in _GSM7_EXTENSION:
        return char
    if char in _GSM7_SUBSTITUTES:
        return _GSM7_SUBSTITUTES[char]
    # Compatibility decomposition drops accents (ê → e) and spells out ligatures (… → ...).
    decomposed = unicodedata.normalize("NFKD", char)
    base = "".join(part for part in decomposed if not unicodedata.combining(part))
    return base if base and all(part in _GSM7_BASIC for part in base) else ""


def sms_text(*, site_name: str, link: str) -> str:
    """A one-segment French invitation; the site name is shortened if needed, never the link."""
    gsm7_length(link)  # a link outside GSM-7 is a bug upstream: refuse it rather than mangle it
    tail = f"{_SMS_CALL}{link}{_SMS_STOP}"
    budget = SMS_SEGMENT_SEPTETS - gsm7_length(tail) - len(" : ")
    site = _shortened(to_gsm7(site_name), budget)
    text = f"{site} : {tail}" if site else tail[0].upper() + tail[1:]
    if gsm7_length(text) > SMS_SEGMENT_SEPTETS:
        raise ValueError("the survey link is too long for a one-segment SMS")
    return text


def _shortened(name: str, budget: int) -> str:
    if gsm7_length(name) <= budget:
        return name
    if budget < _MIN_SITE_SEPTETS:
        return ""
    while name and gsm7_length(name) + 1 > budget:
        name = name[:-1]
    name = name.rstrip(" .,;:-'\"(")
    return f"{name}." if name else ""


# --------------------------------------------------------------------------- failure reasons

# A relay's refusal often quotes the recipient ("550 5.1.1 <jean.dupont@exemple.fr>: Recipient
# address rejected"); an SMS provider's may quote the phone number. A failure reason travels in
# `invitation failed` events and stays in `invitations.last_error`: it keeps the codes only.
_ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})(?!\S)")
_ADDRESS_LIKE = re.compile(r"<[^>]*>|\S*@\S*|\+?\d(?:[ .()/-]?\d){8,}")  # 9 digits or more


def smtp_reason(code: int, text: str) -> str:
    """ "smtp 550 5.1.1": the reply code and its enhanced status code (RFC 3463), nothing of
    the server's free text."""
    enhanced = _ENHANCED_STATUS.match(text)
    return f"smtp {code} {enhanced.group(1)}" if enhanced else f"smtp {code}"


def scrubbed(text: str, limit: int = 500) -> str:
    """A failure text without anything shaped like an address or a phone number, on one line."""
    return " ".join(_ADDRESS_LIKE.sub("[…]", header_safe(text)).split())[:limit]


# --------------------------------------------------------------------------- mail headers

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none may reach a
# header, where a CR or LF would start a header of the sender's choosing.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_safe(text: str) -> str:
    """`text` on one line: every control character becomes a space, spaces are collapsed."""
    return " ".join(_CONTROL_CHARACTERS.sub(" ", text).split())


def has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTERS.search(text) is not None
