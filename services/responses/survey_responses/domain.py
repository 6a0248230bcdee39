"""Pure rules of the survey page: can this invitation be answered now, and with what."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.questionnaire import Item, ItemKind, Questionnaire
from survey_responses.first_names import FIRST_NAMES, HOMOGRAPHS

MAX_TOKEN_LENGTH = 128  # real tokens are ~16 characters; longer ones are cut, never hashed whole


class LinkState(StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ANSWERED = "answered"


def link_state(
    *, found: bool, expires_at: datetime | None, answered: bool, now: datetime
) -> LinkState:
    if not found:
        return LinkState.UNKNOWN
    if answered:
        return LinkState.ANSWERED
    if expires_at is not None and now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.OPEN


@dataclass(frozen=True)
class Step:
    """What the page shows at once: one question, or a group of them (the themes)."""

    number: int
    items: tuple[Item, ...]
    group: str | None

    @property
    def required(self) -> bool:
        return any(item.required for item in self.items)


def steps(questionnaire: Questionnaire) -> list[Step]:
    """Consecutive items of the same group make one step; every other item is a step alone."""
    grouped: list[tuple[str | None, list[Item]]] = []
    for item in questionnaire.items:
        if item.group is not None and grouped and grouped[-1][0] == item.group:
            grouped[-1][1].append(item)
        else:
            grouped.append((item.group, [item]))
    return [
        Step(number=index, items=tuple(items), group=group)
        for index, (group, items) in enumerate(grouped, start=1)
    ]


def asks_recontact(questionnaire: Questionnaire) -> bool:
    """Whether the version asks the user's consent to be called back (`recontact`)."""
    return any(item.id == "recontact" for item in questionnaire.items)


def prefilled_answers(
    questionnaire: Questionnaire, invitation: Mapping[str, Any]
) -> dict[str, str]:
    """Items the CRM already told us (channel, profile, nature), editable by the user."""
    prefill = {}
    for item in questionnaire.items:
        if item.prefill and invitation.get(item.prefill):
            value = str(invitation[item.prefill])
            if item.kind is not ItemKind.CHOICE or value in {o.value for o in item.options}:
                prefill[item.id] = value
    return prefill


def clean_text(value: str) -> str:
    """Drop what PostgreSQL or UTF-8 refuse (NUL, lone surrogates) instead of failing with a 500."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def clean_answers(raw: Mapping[str, object]) -> dict[str, object]:
    return {
        clean_text(key): clean_text(value) if isinstance(value, str) else value
        for key, value in raw.items()
    }


def form_answers(form: Mapping[str, Any], questionnaire: Questionnaire) -> dict[str, object]:
    """Keep only the questionnaire's fields from a submitted form (drops the CSRF token etc.)."""
    known = {item.id for item in questionnaire.items}
    return clean_answers({key: value for key, value in form.items() if key in known})


def token_digest_input(token: str) -> bytes:
    return clean_text(token[:MAX_TOKEN_LENGTH]).encode()


# --- Redaction of free text -------------------------------------------------------------------
# People write their phone, e-mail, social security number or bank account in a suggestion box
# ("rappelez-moi au 06 12 34 56 78"). Free text is shown to managers: those never reach them.
# Order matters: an IBAN or a NIR holds digit runs a phone pattern could otherwise take.

_SEP = r"[ .\-\u00a0]?"  # between digit groups: space, dot, dash, no-break space, or nothing
_EMAIL = re.compile(
    r"[\w.+\-]+ ?(?:@|\(at\)|\[at\]) ?[\w\-]+(?:\.[\w\-]+)*\.[a-z]{2,}\b", re.IGNORECASE
)
# Country code, check digits, then 11 to 30 letters or digits, often in groups of four (FR: 23).
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
# NIR: sex (1, 2; 3, 4, 7, 8 for temporary numbers), year, month (01-12, 20-42 or 50-99 when
# unknown), department (2 digits or 2A/2B), commune (3), order (3), then the key (2), optional.
_NIR = re.compile(
    rf"(?<!\w)[123478]{_SEP}\d\d{_SEP}(?:0[1-9]|1[0-2]|[2-9]\d){_SEP}(?:\d\d|2[AB]){_SEP}"
    rf"\d{{3}}{_SEP}\d{{3}}(?:{_SEP}\d\d)?(?!\d)",
    re.IGNORECASE,
)
# French numbers: 0X XX XX XX XX, +33 X XX XX XX XX, +33 (0)X XX..., 0033 X XX...
_PHONE = re.compile(
    rf"(?:(?<![\d+])(?:\+|00) ?33{_SEP}(?:\(0\){_SEP}|0)?|(?<![\d+])0)"
    rf"[1-9](?:{_SEP}\d\d){{4}}(?!\d)"
)


def _iban(match: re.Match[str]) -> str:
    """An IBAN is mostly digits: "Ab12 cdef ghij" is a word game, not a bank account."""
    digits = sum(character.isdigit() for character in match[0])
    return "[IBAN]" if digits >= 10 else match[0]


_REDACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_EMAIL, "[courriel]"),
    (_IBAN, _iban),
    (_NIR, "[numéro de sécurité sociale]"),
    (_PHONE, "[téléphone]"),
)


def redact(text: str) -> str:
    """`text` with phone numbers, e-mail addresses, NIR, IBAN and person names replaced by a
    French tag."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return redact_names(text)


# Person names: « Mme Dupont », « M. Jean-Luc Le Goff », « conseillère Sophie », « je m'appelle
# karim », « de la part de Marie Martin », « Sophie Durand m'a reçu » become « [nom] » (the
# civility or role stays: it says who was praised without saying who). A name is a capitalised
# word after a civility, a role or an introduction, or a known first name (FIRST_NAMES, in any
# case; one that is also a word, HOMOGRAPHS, only capitalised inside a sentence). After
# « Mme », « monsieur »... and an introduction, a lower-case word is a name too unless it is an
# ordinary word that follows them (« madame très gentille », « monsieur qui m'a reçu »).
# A capitalised ordinary word (« Merci », « Caf », « Pôle emploi », a sentence start) is not.

NAME_TAG = "[nom]"
# a word, hyphenated or not; « N'Diaye », « O'Neill », « D'Almeida » are one word
# (not inside an identifier or a code: « SSE_MAX_CLIENTS », « B2B »)
_NAME_WORD = re.compile(r"(?<!\w)(?:[DLNO]['’](?=[A-ZÀ-ÖØ-Þ]))?[^\W\d_]+(?:-[^\W\d_]+)*(?!\w)")
_NAME_JOIN = re.compile(r"[ \t\u00a0]+|[ \t\u00a0]*['’][ \t\u00a0]*")  # between parts of one name
_CIVILITY_GAP = re.compile(r"\.?[ \t\u00a0]+|\.")  # « M. Dupont », « Mme Dupont », « M.Dupont »
_INTRODUCTION_GAP = re.compile(r"[ \t\u00a0]*[:,]?[ \t\u00a0]*")  # « je m'appelle : Marie »
_CIVILITIES = frozenset(
    ("m", "mr", "mme", "mmes", "mlle", "melle", "dr", "monsieur", "madame", "mademoiselle",
     "docteur", "maitre", "professeur")
)  # fmt: skip
_ROLES = frozenset(
    ("conseiller", "conseillere", "agent", "agente", "gestionnaire", "interlocuteur",
     "interlocutrice", "collegue", "assistante", "assistant", "referent", "referente")
)  # fmt: skip
_INTRODUCTIONS = (
    ("je", "m", "appelle"),
    ("je", "me", "nomme"),
    ("mon", "nom", "est"),
    ("mon", "nom", "c", "est"),
    ("mon", "prenom", "est"),
    ("mon", "prenom", "c", "est"),
    ("de", "la", "part", "de"),
    ("de", "la", "part", "d"),
    ("signe",),
)
_PARTICLES = frozenset(["de", "du", "des", "d", "le", "la", "van", "von", "ben", "el", "da"])
# Ordinary words that follow a civility or start a sentence, capitalised or not: never a name.
_NOT_NAMES_TEXT = """
    a à au aux avec ce cet cette c ça d de des du elle en est et était etait été ete il ils j je
    l la le les leur lui m ma me mes moi mon n ne nous on ou où par pas pour qu que qui s sa se
    ses son sur t ta te tes toi ton tu un une vos votre vous y
    très tres trop super hyper vraiment bien mal toujours jamais aussi si peu plus moins
    gentil gentille gentils gentilles aimable aimables sympa sympathique agréable agreable
    désagréable desagreable souriant souriante poli polie polis impoli impolie patient patiente
    compétent compétente competent competente efficace professionnel professionnelle accueillant
    accueillante charmant charmante adorable serviable disponible top parfait parfaite nul nulle
    froid froide sèche seche pressé pressée bon bonne belle excellent excellente grand grande
    avait a ai explique expliqué parle parlé répond répondu reçoit reçu sait savait fait dit
    connaît connait connaissait peut pouvait doit devait prend pris rappelle rappelé aide aidé
    dame monsieur madame mademoiselle personne agent maire préfet prefet président presidente
    chef adjoint adjointe
    conseiller conseillère conseillere directeur directrice responsable secrétaire secretaire
    merci bonjour bonsoir salut cordialement svp stp bravo félicitations felicitations
    caf cpam urssaf msa carsat cnav ameli mdph pôle pole emploi france travail impôts impots
    mairie préfecture prefecture sécurité securite sociale assurance maladie retraite poste
    agence accueil guichet service standard dossier
    rsa apl cmu css ame rib tva siret nir iban sms mail cesu paje cdd cdi rdv ok
    lundi mardi mercredi jeudi vendredi samedi dimanche janvier février fevrier mars avril mai
    juin juillet août aout septembre octobre novembre décembre decembre
"""


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_FIRST_NAMES = frozenset(_fold(name) for name in FIRST_NAMES)
_HOMOGRAPHS = frozenset(_fold(name) for name in HOMOGRAPHS)
_NOT_NAMES = frozenset(_fold(word) for word in _NOT_NAMES_TEXT.split())


def _is_name(word: str, *, lower_case_too: bool) -> bool:
    folded = _fold(word)
    if folded in _NOT_NAMES:
        return False
    if not lower_case_too and word.isupper() and len(word) <= 5 and folded not in _FIRST_NAMES:
        return False  # an acronym: « agent SNCF », « conseillère MDPH »
    return word[0].isupper() or folded in _FIRST_NAMES or lower_case_too


def _starts_a_sentence(text: str, start: int) -> bool:
    index = start - 1
    while index >= 0 and text[index] in " \t\u00a0":
        index -= 1
    return index < 0 or text[index] in ".!?…\r\n"


def _name_span(text: str, words: list[re.Match[str]], index: int, *, lower_case_too: bool) -> int:
    """How many words from `index` make a name (at most four: « Jean-Luc de La Fontaine »)."""
    taken = 0
    while index + taken < len(words) and taken < 4:
        word = words[index + taken]
        if taken and not _NAME_JOIN.fullmatch(text, words[index + taken - 1].end(), word.start()):
            break
        # lower case: the first word, and the one after a known first name (« kevin dupont »)
        loose = lower_case_too and (
            taken == 0 or (taken == 1 and _fold(words[index][0]) in _FIRST_NAMES)
        )
        if _is_name(word[0], lower_case_too=loose):
            taken += 1
        elif (
            (taken or lower_case_too)
            and _fold(word[0]) in _PARTICLES
            and index + taken + 1 < len(words)
            and words[index + taken + 1][0][0].isupper()
            and _is_name(words[index + taken + 1][0], lower_case_too=False)
            and _NAME_JOIN.fullmatch(text, word.end(), words[index + taken + 1].start())
        ):
            taken += 1  # « Le » in « M. Le Goff »: only with a capitalised name after it
        else:
            break
    return taken


def _introduction_ends(folded: list[str], index: int) -> bool:
    return any(
        index + 1 >= len(intro) and tuple(folded[index + 1 - len(intro) : index + 1]) == intro
        for intro in _INTRODUCTIONS
    )


def redact_names(text: str) -> str:
    """`text` with the person names it names replaced by « [nom] »."""
    words = list(_NAME_WORD.finditer(text))
    folded = [_fold(word[0]) for word in words]
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(words):
        word, key = words[index], folded[index]
        after = words[index + 1].start() if index + 1 < len(words) else len(text)
        start, taken = index + 1, 0
        # « M » only capitalised or with its dot: « il m explique » (SMS) is no civility
        civility = key in _CIVILITIES and (
            key != "m" or word[0] == "M" or text[word.end() :][:1] == "."
        )
        if civility and _CIVILITY_GAP.fullmatch(text, word.end(), after):
            taken = _name_span(text, words, start, lower_case_too=True)
        elif key in _ROLES and _CIVILITY_GAP.fullmatch(text, word.end(), after):
            taken = _name_span(text, words, start, lower_case_too=False)
        elif _introduction_ends(folded, index) and _INTRODUCTION_GAP.fullmatch(
            text, word.end(), after
        ):
            taken = _name_span(text, words, start, lower_case_too=True)
        elif key in _FIRST_NAMES:
            start = index
            taken = _name_span(text, words, start, lower_case_too=False)
            if (
                taken == 1
                and key in _HOMOGRAPHS
                and (word[0][0].islower() or _starts_a_sentence(text, word.start()))
            ):
                taken = 0  # « Rose et verte », « en jean »: a word, not « merci à Claire »
        if taken:
            spans.append((words[start].start(), words[start + taken - 1].end()))
            index = start + taken
        else:
            index += 1
    for begin, end in reversed(spans):
        text = text[:begin] + NAME_TAG + text[end:]
    return text


def redact_answers(
    questionnaire: Questionnaire, answers: dict[str, int | str]
) -> dict[str, int | str]:
    """The answers with every free-text item redacted (ratings and choice codes are codes)."""
    text_items = set(free_text_items(questionnaire))
    return {
        key: redact(value) if key in text_items and isinstance(value, str) else value
        for key, value in answers.items()
    }


def without_free_text(questionnaire: Questionnaire, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The anonymous part of answers: ratings and choice codes, no free text."""
    text_items = set(free_text_items(questionnaire))
    return {key: value for key, value in answers.items() if key not in text_items}


def free_text_items(questionnaire: Questionnaire) -> list[str]:
    return [item.id for item in questionnaire.items if item.kind is ItemKind.TEXT]


def free_text_everywhere(questionnaires: Iterable[Questionnaire]) -> list[str]:
    """Item ids that are free text in every questionnaire that has them: the keys the retention
    task may drop from any response, whatever its questionnaire version."""
    text: set[str] = set()
    other: set[str] = set()
    for questionnaire in questionnaires:
        for item in questionnaire.items:
            (text if item.kind is ItemKind.TEXT else other).add(item.id)
    return sorted(text - other)


@dataclass(frozen=True)
class Legal:
    """Who answers for the service, for the pages a French public-service form must link
    (personal data, legal notice, accessibility). Defaults: the reference network (Urssaf)."""

    controller: str = "Urssaf Caisse nationale"
    controller_address: str = "36 rue de Valmy, 93108 Montreuil Cedex"
    publication_director: str = "Le directeur de l'Urssaf Caisse nationale"
    dpo_contact: str = (
        "Délégué à la protection des données, Urssaf Caisse nationale, "
        "36 rue de Valmy, 93108 Montreuil Cedex"
    )
    host: str = "Urssaf Caisse nationale, 36 rue de Valmy, 93108 Montreuil Cedex"
    accessibility_contact: str = (
        "Urssaf Caisse nationale, service accessibilité, 36 rue de Valmy, 93108 Montreuil Cedex"
    )
    accessibility_status: str = "partiellement conforme"
    free_text_retention_days: int = 180
