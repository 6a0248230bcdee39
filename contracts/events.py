"""Event payloads (`data` of the CloudEvents envelope). Field descriptions are French / English."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from contracts.envelope import CloudEvent
from contracts.sites import check_timezone

# No control character (C0, DEL, C1) nor line/paragraph separator may reach a label: a CR/LF in a
# site name would otherwise become a mail header, a log line or a CSV row of its own.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"

Identifier = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)]
PseudonymousId = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$"),
    AfterValidator(check_timezone),
]
"""An IANA time zone (America/Guadeloupe). Absent: contracts.sites.site_clock's default."""
SITE_TIMEZONE_DOC = (
    "Fuseau horaire IANA du site (ex. America/Guadeloupe) ; absent : défaut de contracts.sites / "
    "The site's IANA time zone; absent: the contracts.sites default"
)


def _doc(french: str, english: str) -> str:
    return f"{french} / {english}"


class Channel(StrEnum):
    """Services Publics+ channel list (« Vision par canaux »), plus SMS and chat."""

    ACCUEIL_PHYSIQUE = "accueil_physique"
    TELEPHONE = "telephone"
    COURRIER = "courrier"
    COURRIEL = "courriel"
    FORMULAIRE_EN_LIGNE = "formulaire_en_ligne"
    VISIO = "visio"
    RESEAUX_SOCIAUX = "reseaux_sociaux"
    SMS = "sms"
    CHAT = "chat"


class SurveyChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class RequestNature(StrEnum):
    INFORMATION = "information"
    RECLAMATION = "reclamation"
    SUIVI_DOSSIER = "suivi_dossier"
    AUTRE = "autre"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ContactClosed(_Payload):
    """The CRM integration contract: one closed contact between a user and a public service site."""

    contact_id: Identifier = Field(
        description=_doc(
            "Identifiant unique du contact dans le CRM", "Unique contact id in the CRM"
        )
    )
    closed_at: AwareDatetime = Field(
        description=_doc(
            "Fin du contact, avec décalage horaire (ISO 8601)",
            "When the contact ended, with offset",
        )
    )
    site_id: Identifier = Field(
        description=_doc("Identifiant du site (agence, accueil)", "Site (agency, front office) id")
    )
    site_name: Label | None = Field(
        default=None,
        description=_doc("Nom du site, affiché à l'usager", "Site name, shown to the user"),
    )
    network: Identifier = Field(
        description=_doc("Réseau ou organisme (ex. urssaf)", "Network or body (e.g. urssaf)")
    )
    channel: Channel = Field(
        description=_doc(
            "Canal du contact, liste Services Publics+", "Contact channel, Services Publics+ list"
        )
    )
    motif: Identifier = Field(
        description=_doc("Motif du contact (typologie simple)", "Contact reason (simple typology)")
    )
    sub_motif: Identifier | None = Field(
        default=None, description=_doc("Sous-motif du contact", "Contact sub-reason")
    )
    user_ref: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)] = (
        Field(
            description=_doc(
                "Référence pseudonyme de l'usager dans le CRM (jamais un NIR)",
                "Pseudonymous user reference in the CRM (never a national id)",
            )
        )
    )
    profile: Identifier | None = Field(
        default=None,
        description=_doc(
            "Profil de l'usager (employeur, particulier...)",
            "User profile (employer, individual...)",
        ),
    )
    request_nature: RequestNature | None = Field(
        default=None, description=_doc("Nature de la demande", "Nature of the request")
    )
    email: Annotated[str, Field(max_length=254, pattern=NO_CONTROL_CHARACTERS)] | None = Field(
        default=None,
        description=_doc(
            "Courriel de l'usager, pour l'invitation seulement (vérifié par survey-dispatch)",
            "User's email, for the invitation only (checked by survey-dispatch)",
        ),
    )
    mobile_phone: Annotated[str, Field(max_length=30, pattern=NO_CONTROL_CHARACTERS)] | None = (
        Field(
            default=None,
            description=_doc(
                "Téléphone mobile (E.164 ou format national)",
                "Mobile phone (E.164 or national format)",
            ),
        )
    )
    preferred_channel: SurveyChannel = Field(
        default=SurveyChannel.EMAIL,
        description=_doc("Canal préféré pour l'enquête", "Preferred survey channel"),
    )
    opted_out: bool = Field(
        default=False,
        description=_doc("L'usager refuse d'être sollicité", "The user refuses to be surveyed"),
    )
    team: Identifier | None = Field(
        default=None,
        description=_doc("Équipe (jamais un agent individuel)", "Team (never an individual agent)"),
    )


class InvitationSent(_Payload):
    """An invitation handed to the SMTP server or SMS provider. No email or phone, by design."""

    invitation_id: Identifier
    contact_id: Identifier
    site_id: Identifier
    site_name: Label | None = None
    network: Identifier
    channel: Channel = Field(description="Channel of the surveyed contact.")
    motif: Identifier
    profile: Identifier | None = None
    request_nature: RequestNature | None = None
    survey_channel: SurveyChannel
    user_pseudo_id: Annotated[str, Field(min_length=16, max_length=128)] = Field(
        description="HMAC of the CRM user reference; never reversible downstream."
    )
    questionnaire_version: Identifier
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the survey link's token; the token itself never leaves dispatch."
    )
    sent_at: AwareDatetime
    expires_at: AwareDatetime
    site_timezone: TimeZoneName | None = Field(default=None, description=SITE_TIMEZONE_DOC)


class SuppressionReason(StrEnum):
    DUPLICATE_CONTACT = "duplicate_contact"
    CHANNEL_EXCLUDED = "channel_excluded"
    MOTIF_EXCLUDED = "motif_excluded"
    NOT_SAMPLED = "not_sampled"
    OPTED_OUT = "opted_out"
    FATIGUE = "fatigue"
    NO_CONTACT_POINT = "no_contact_point"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"


class InvitationSuppressed(_Payload):
    contact_id: Identifier
    site_id: Identifier
    network: Identifier
    channel: Channel
    motif: Identifier
    reason: SuppressionReason
    detail: Annotated[str, Field(max_length=500)] = ""
    decided_at: AwareDatetime


class InvitationFailed(_Payload):
    invitation_id: Identifier
    contact_id: Identifier
    site_id: Identifier
    network: Identifier
    survey_channel: SurveyChannel
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    failed_at: AwareDatetime


class InvitationReminded(_Payload):
    invitation_id: Identifier
    site_id: Identifier
    network: Identifier
    survey_channel: SurveyChannel
    reminded_at: AwareDatetime


AnswerValue = StrictInt | Annotated[str, Field(max_length=2000)]
"""A rating is a JSON integer (never `true` nor `7.0`); a choice code or free text is a string."""
ChoiceAnswer = StrictInt | Identifier
"""What may leave scoring about an answer: ratings and choice codes, never free text."""


class ResponseSubmitted(_Payload):
    """A completed survey. Free text (`suggestion`) is for scoring and reporting, not public."""

    response_id: Identifier
    invitation_id: Identifier
    contact_id: Identifier
    site_id: Identifier
    network: Identifier
    channel: Channel
    motif: Identifier
    profile: Identifier | None = None
    request_nature: RequestNature | None = None
    user_pseudo_id: Annotated[str, Field(min_length=16, max_length=128)] | None = None
    questionnaire_version: Identifier
    answers: dict[Identifier, AnswerValue] = Field(
        description="Answers by question id; skipped items are absent."
    )
    answered_at: AwareDatetime
    site_timezone: TimeZoneName | None = Field(default=None, description=SITE_TIMEZONE_DOC)
    invited_at: AwareDatetime | None = Field(
        default=None,
        description="When the invitation answered was sent (InvitationSent.sent_at): scoring "
        "counts the answer with its invitation's cohort. Absent in older events.",
    )


class Interval(_Payload):
    low: float
    high: float
    level: float = 0.95
    method: Annotated[str, Field(max_length=40)]


class IndicatorFigure(_Payload):
    """One figure with the sample behind it and how sure it is."""

    indicator: Identifier = Field(description="nps, ces, fcr_declared, satisfaction, ...")
    label: Label
    value: float | None = Field(description="None when nobody answered the item.")
    unit: Annotated[str, Field(max_length=20)] = Field(description="score, percent, mean_1_10 ...")
    sample_size: int = Field(ge=0)
    interval: Interval | None = None
    counts: dict[Identifier, int] = Field(default_factory=dict)
    provisional: bool = False


class PeriodFigures(_Payload):
    period: Identifier = Field(description="rolling_90d, previous_rolling_90d, iso_week, ...")
    start: date
    end: date = Field(description="Last day included.")
    figures: list[IndicatorFigure]


class SiteIndicatorsUpdated(_Payload):
    """The latest figures of one site (compacted topic, key = site id)."""

    site_id: Identifier
    site_name: Label | None = None
    network: Identifier
    computed_at: AwareDatetime
    periods: list[PeriodFigures]
    site_timezone: TimeZoneName | None = Field(default=None, description=SITE_TIMEZONE_DOC)


class DetractorReason(StrEnum):
    LOW_RECOMMENDATION = "low_recommendation"
    LOW_SATISFACTION = "low_satisfaction"
    REPEAT_CONTACT_WITH_SUGGESTION = "repeat_contact_with_suggestion"


class DetractorAlert(_Payload):
    """For the CRM's call-back queue. No email or phone: the CRM resolves the contact id."""

    alert_id: Identifier
    invitation_id: Identifier
    contact_id: Identifier
    site_id: Identifier
    network: Identifier
    reasons: list[DetractorReason] = Field(min_length=1)
    answers: dict[Identifier, ChoiceAnswer] = Field(
        description="Ratings and choice codes only: free text never travels to a call-back queue."
    )
    raised_at: AwareDatetime


class CallbackOutcome(StrEnum):
    """How a call-back ended (French labels: CALLBACK_OUTCOME_LABELS)."""

    RAPPELE_RESOLU = "rappele_resolu"
    RAPPELE_SANS_SOLUTION = "rappele_sans_solution"
    INJOIGNABLE = "injoignable"
    REFUS = "refus"


CALLBACK_OUTCOME_LABELS: dict[str, str] = {
    CallbackOutcome.RAPPELE_RESOLU: "rappelé et résolu",
    CallbackOutcome.RAPPELE_SANS_SOLUTION: "rappelé sans solution",
    CallbackOutcome.INJOIGNABLE: "injoignable",
    CallbackOutcome.REFUS: "refus",
}


class CallbackCompleted(_Payload):
    """A CRM reports a detractor alert's call-back done. No agent: a team at most."""

    callback_id: Identifier = Field(
        description=_doc(
            "Identifiant unique du rappel dans le CRM (clé d'idempotence)",
            "Unique call-back id in the CRM (idempotence key)",
        )
    )
    alert_id: Identifier = Field(
        description=_doc("Alerte rappelée (scoring.alert.v1)", "Alert called back")
    )
    site_id: Identifier = Field(description=_doc("Site de l'alerte", "The alert's site"))
    network: Identifier = Field(description=_doc("Réseau de l'alerte", "The alert's network"))
    outcome: CallbackOutcome = Field(
        description=_doc(
            "Issue : « rappelé et résolu », « rappelé sans solution », « injoignable », « refus »",
            "Outcome: called back and resolved, called back without a solution, unreachable, "
            "refused",
        )
    )
    completed_at: AwareDatetime = Field(
        description=_doc(
            "Fin du rappel, avec décalage horaire (ISO 8601)",
            "When the call-back ended, with offset",
        )
    )
    team: Identifier | None = Field(
        default=None,
        description=_doc("Équipe (jamais un agent individuel)", "Team (never an individual agent)"),
    )


class ContactSeen(_Payload):
    """A closed contact, pseudonymised by survey-dispatch: the only way others learn of contacts.

    Emitted for every valid contact, surveyed or not, for observed first-contact resolution. It
    carries no e-mail, phone or CRM user reference: only the keyed pseudonym.
    """

    contact_id: Identifier
    site_id: Identifier
    network: Identifier
    channel: Channel
    motif: Identifier
    sub_motif: Identifier | None = None
    team: Identifier | None = None
    user_pseudo_id: PseudonymousId = Field(
        description="HMAC of the CRM user reference, keyed by survey-dispatch's secret."
    )
    closed_at: AwareDatetime
    site_timezone: TimeZoneName | None = Field(default=None, description=SITE_TIMEZONE_DOC)


class UserErased(_Payload):
    """A user asked for erasure: every service erases or unlinks what it holds about them."""

    erasure_id: Identifier
    network: Identifier
    user_pseudo_id: PseudonymousId
    requested_at: AwareDatetime


ContactClosedEvent = CloudEvent[ContactClosed]
ContactSeenEvent = CloudEvent[ContactSeen]
UserErasedEvent = CloudEvent[UserErased]
InvitationSentEvent = CloudEvent[InvitationSent]
InvitationSuppressedEvent = CloudEvent[InvitationSuppressed]
InvitationFailedEvent = CloudEvent[InvitationFailed]
InvitationRemindedEvent = CloudEvent[InvitationReminded]
ResponseSubmittedEvent = CloudEvent[ResponseSubmitted]
SiteIndicatorsUpdatedEvent = CloudEvent[SiteIndicatorsUpdated]
DetractorAlertEvent = CloudEvent[DetractorAlert]
CallbackCompletedEvent = CloudEvent[CallbackCompleted]
