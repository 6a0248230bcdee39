"""Person names a user typed in a verbatim become « [nom] » before it is stored or emitted
(issue #17, « redaction first »), and ordinary capitalised words stay."""

from __future__ import annotations

import pytest
from survey_responses import domain
from survey_responses.first_names import FIRST_NAMES, HOMOGRAPHS

pytestmark = pytest.mark.unit

NAMED = [
    # civilities, capitalised or not, with or without a dot
    ("Merci à Mme Dupont pour son aide.", "Merci à Mme [nom] pour son aide."),
    ("M. Martin très aimable", "M. [nom] très aimable"),
    ("Mr Lefèvre m'a bien reçu", "Mr [nom] m'a bien reçu"),
    ("Mlle Nguyen était souriante", "Mlle [nom] était souriante"),
    ("mme bernard tres gentille", "mme [nom] tres gentille"),
    ("M.Durand a tout réglé", "M.[nom] a tout réglé"),
    ("Madame Moreau a été patiente.", "Madame [nom] a été patiente."),
    ("monsieur Petit m'a rappelé", "monsieur [nom] m'a rappelé"),
    ("Mademoiselle Roux, merci !", "Mademoiselle [nom], merci !"),
    ("le docteur Lambert", "le docteur [nom]"),
    ("Dr. Girard", "Dr. [nom]"),
    # compound names, particles, all capitals
    ("M. Jean-Luc Le Goff", "M. [nom]"),
    ("Mme N'Diaye a été top", "Mme [nom] a été top"),
    ("M. de Villiers", "M. [nom]"),
    ("Mme Dupont-Moretti", "Mme [nom]"),
    ("M. DUPONT EST NUL", "M. [nom] EST NUL"),
    # roles
    ("La conseillère Sophie a été formidable.", "La conseillère [nom] a été formidable."),
    ("conseiller Morel très pro", "conseiller [nom] très pro"),
    ("l'agent Karim m'a aidé", "l'agent [nom] m'a aidé"),
    ("ma gestionnaire Nadia Benali", "ma gestionnaire [nom]"),
    # introductions
    ("Je m'appelle Paul Durand, rappelez-moi.", "Je m'appelle [nom], rappelez-moi."),
    ("je m appelle kevin dupont", "je m appelle [nom]"),
    ("Mon nom est Lemaire.", "Mon nom est [nom]."),
    ("mon nom c'est gautier", "mon nom c'est [nom]"),
    ("Message de la part de Marie Dubois", "Message de la part de [nom]"),
    ("Signé : Bertrand", "Signé : [nom]"),
    # a known first name, alone or before a capitalised word
    ("Merci à Sophie pour sa patience.", "Merci à [nom] pour sa patience."),
    ("Sophie Durand m'a reçue.", "[nom] m'a reçue."),
    ("Un grand merci à Jean-Pierre Martin !", "Un grand merci à [nom] !"),
    ("Nathalie très gentille", "[nom] très gentille"),
    ("merci à Mohamed et Fatima", "merci à [nom] et [nom]"),
    ("Pierre Lemoine m'a bien expliqué", "[nom] m'a bien expliqué"),
    ("merci a lucie de l'accueil", "merci a [nom] de l'accueil"),
    ("Merci à Claire pour son aide.", "Merci à [nom] pour son aide."),
    ("Mme Leroy et M. Faure ont été top", "Mme [nom] et M. [nom] ont été top"),
    # with the other redactions
    (
        "Mme Dupont, rappelez-moi au 06 12 34 56 78",
        "Mme [nom], rappelez-moi au [téléphone]",
    ),
    ("écrire à marie.durand@example.fr", "écrire à [courriel]"),
]

UNCHANGED = [
    "Merci pour votre accueil.",
    "Bonjour, je voulais dire merci.",
    "Très bien, rien à signaler.",
    "La Caf ne répond jamais.",
    "Agent Urssaf très gentil.",
    "Conseiller Pôle emploi compétent.",
    "La conseillère France Travail m'a aidé.",
    "Madame très aimable, monsieur aussi.",
    "Madame m'a bien expliqué.",
    "La dame de l'accueil était super.",
    "Le conseiller a été efficace.",
    "Mme était gentille mais pressée.",
    "Monsieur, je vous remercie.",
    "il m explique tout",
    "Pierre tombale, parking en travaux.",
    "Rose et verte, la façade est jolie.",
    "Claire et précise, la réponse m'a aidé.",
    "Le RSA est arrivé en Mai.",
    "Code postal 93100 Montreuil.",
    "Il portait un jean, le manuel était clair.",
    "Je remercie Monsieur le Maire.",
    "Agent SNCF très aimable.",
    "conseillère Caf de Lyon très aimable",
    "Je suis venu lundi, Accueil Parfait.",
    "Mon dossier CAF est bloqué.",
    "[téléphone] [courriel] [nom]",
    "Réglage SSE_MAX_CLIENTS à 4, code Marie2024.",
]


@pytest.mark.parametrize(("text", "expected"), NAMED)
def test_person_names_become_the_name_tag(text: str, expected: str) -> None:
    assert domain.redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_capitalised_words_and_civilities_alone_stay(text: str) -> None:
    assert domain.redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    for text, _ in NAMED:
        once = domain.redact(text)
        assert domain.redact(once) == once


def test_the_first_names_list_is_compact_and_homographs_are_first_names_or_words() -> None:
    assert 250 <= len(set(FIRST_NAMES)) <= 500
    assert len(FIRST_NAMES) == len(set(FIRST_NAMES))
    assert all(name[0].isupper() for name in FIRST_NAMES + HOMOGRAPHS)


def test_a_long_verbatim_of_names_stays_within_the_contract_length() -> None:
    worst = " ".join(["M. A"] * 250)[:1000]  # the shortest name after the shortest civility
    assert len(domain.redact(worst)) <= 2000
