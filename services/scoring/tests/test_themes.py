"""The verbatim tagger (issue #17): negation, misspellings, explanations, redaction tags, and its
precision and recall on the held-out part of the labelled corpus."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from scoring.themes import THEMES, TONES, Tagging, measure, tag

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "data" / "verbatims_fr.jsonl"
# How the corpus is labelled: a theme when the verbatim judges it or complains of it (a topic
# named without an opinion is no theme, a neutral verbatim has none); any statement about speed
# or waiting is « delais », also when it qualifies the handling (« réglé rapidement »: prise en
# charge and délais); the user not understanding is « clarte », the agent not understanding
# « comprehension »; praise and complaint together is « irritant »; a suggestion wins the tone.
# Where the writers had to decide (their written rules): opening hours and days, being open or
# closed, a visit without appointment and appointment availability are « facilite_contact »
# (how easy the service is to reach; the rooms themselves are « autre »); waiting on hold or
# months for an appointment is « facilite_contact » and « delais », not getting through at all
# « facilite_contact » only; processing time alone is « delais », plus « prise_en_charge » only
# when the handling itself is judged (« traitée en 48h », « toujours pas traité »); nobody called
# back, a lost file, being sent from office to office or having to repeat is « prise_en_charge »;
# no explanation of a refusal, jargon, being lost on the website is « clarte », the website's
# bugs unrelated to contact « autre »; the survey itself is « autre »; « Continuez comme ça ! »
# is satisfaction; a plain proposal (« Souriez un peu », « plus de conseillers svp ») is a
# suggestion; « pas de suggestion », « pas concerné », « non merci » are neutre.
# Round ten, the writers' further decisions: no answer at all to e-mails or letters is
# « prise_en_charge », an answer that came slowly « delais » only, no answer with a duration
# (« 6 semaines sans réponse ») both; « toujours pas reçu » after a duration is « prise_en_charge »
# and « delais », a file merely waiting (« en attente depuis 8 mois ») « delais » only; being passed
# between services is « prise_en_charge »; a duration that tells how long premises or the site
# have been broken (« ascenseur en panne depuis des mois ») is « autre », no wait.
# The « heldout » lines were written in batches before the tagger ran on them; a batch measured
# once after a lexicon freeze then moved to « tune » is said so in the git log.

# Measured once on the held-out part: 375 verbatims written blind by a fourth engineer who read
# nothing of the project but the labelling rules above (benefit renewals, pensions, MDPH,
# residence permits, tax...), committed before the tagger ran on them, measured after the
# round-ten freeze (loadtests/results/2026-12-03T080759Z.json): every theme and tone at or
# above the goal of 0.8 (neutre precision exactly 0.80; réponse personnalisée rests on
# 18 lines). Each round a blind batch by another writer was measured once, then became tune
# material (git log): round eight's 400 lines measured 0.65-0.95 (12 figures under 0.8), round
# nine's 384 lines 0.71-0.98 (6 under), the lexicon authors' own held-out batches 0.70-0.96.
# The floor is these figures minus MARGIN: it catches a regression.
HELD_OUT_MEASURED = {
    "reponse_personnalisee": (0.842, 0.889),
    "clarte": (0.83, 0.907),
    "facilite_contact": (0.828, 0.923),
    "comprehension": (0.955, 0.875),
    "prise_en_charge": (0.897, 0.83),
    "delais": (0.871, 0.938),
    "courtoisie": (0.942, 0.907),
    "autre": (0.875, 0.955),
    "tone:irritant": (0.899, 0.919),
    "tone:satisfaction": (0.937, 0.912),
    "tone:suggestion": (1.0, 0.968),
    "tone:neutre": (0.8, 0.825),
}
MARGIN = 0.05


def themes_of(text: str) -> set[str]:
    return set(tag(text).theme_names)


def words_of(tagging: Tagging, theme: str) -> tuple[str, ...]:
    return next(t.words for t in tagging.themes if t.theme == theme)


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Guichetier pas aimable.", "courtoisie"),
        ("On ne m'a jamais rappelé.", "prise_en_charge"),
        ("Aucune réponse à ma question.", "reponse_personnalisee"),
        ("Personne ne décroche au téléphone.", "facilite_contact"),
        ("Explications pas claires du tout.", "clarte"),
    ],
)
def test_negated_praise_or_topic_is_an_irritant(text: str, theme: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == "irritant"


def test_negated_complaint_is_praise() -> None:
    tagging = tag("Pas trop d'attente ce matin, pas désagréable du tout.")
    assert tagging.theme_names == {"delais", "courtoisie"}
    assert tagging.tone == "satisfaction"


def test_negation_stops_at_the_end_of_the_clause() -> None:
    tagging = tag("Je n'ai pas attendu, la dame était aimable.")
    assert tagging.tone == "satisfaction"
    assert "aimable" in tagging.tone_words


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("tro long", "delais"),
        ("ils mont jamais rapeller", "prise_en_charge"),
        ("acceuil nul", "courtoisie"),
        ("ACCUEIL TRES AGREABLE", "courtoisie"),
        ("tjs pas de rep, on peut pas avoir qqn au tel", "facilite_contact"),
        ("personel tres polli", "courtoisie"),
        ("atente interminable", "delais"),
        ("explication pas clair", "clarte"),
    ],
)
def test_sms_style_misspellings_and_missing_accents(text: str, theme: str) -> None:
    assert theme in themes_of(text)


def test_accents_are_optional() -> None:
    accented = tag("Délai très long, agent désagréable")
    plain = tag("Delai tres long, agent desagreable")
    assert (accented.theme_names, accented.tone) == (plain.theme_names, plain.tone)
    assert accented.tone_words == ("long", "désagréable")
    assert plain.tone_words == ("long", "desagreable")


def test_every_tag_names_the_words_that_triggered_it() -> None:
    tagging = tag("Accueil souriant mais 2 heures d'attente et une réponse type.")
    assert words_of(tagging, "courtoisie") == ("Accueil", "souriant")
    assert words_of(tagging, "delais") == ("2 heures", "attente")
    assert words_of(tagging, "reponse_personnalisee") == ("réponse type",)
    assert tagging.tone == "irritant"
    assert set(tagging.tone_words) == {"2 heures", "réponse type"}


def test_the_longest_entry_wins_its_words() -> None:
    # « réponse standard » is a generic answer, not the switchboard
    assert themes_of("Réponse standard, rien de personnel.") == {"reponse_personnalisee"}
    assert themes_of("Le standard ne répond jamais.") == {"facilite_contact"}


@pytest.mark.parametrize(
    "text",
    ["[téléphone]", "[email]", "[nom] [prénom] [NIR] [IBAN]", "Rappelez-moi au [téléphone]."],
)
def test_redaction_tags_trigger_nothing(text: str) -> None:
    tagging = tag(text.replace("Rappelez-moi au ", ""))
    assert tagging.themes == ()
    assert tagging.tone == "neutre"


def test_a_redaction_tag_inside_a_verbatim_adds_nothing() -> None:
    plain = tag("Merci à Madame pour sa gentillesse.")
    redacted = tag("Merci à Madame [nom] pour sa gentillesse.")
    assert redacted == plain


def test_a_name_redacted_to_its_tag_keeps_the_courtesy_praise() -> None:
    tagging = tag("Mme [nom] très aimable")
    assert tagging.theme_names == {"courtoisie"}
    assert tagging.tone == "satisfaction"


def test_trop_before_praise_is_an_intensifier_not_a_complaint() -> None:
    assert tag("C'était trop bien, conseillère trop gentille.").tone == "satisfaction"
    assert tag("Trop long, trop compliqué.").tone == "irritant"


def test_a_time_of_day_is_not_a_wait() -> None:
    assert "delais" not in themes_of("On ne peut appeler qu'entre 9h et 12h, c'est trop court.")
    assert "delais" in themes_of("Attente de 2h pour 5 minutes de rendez-vous.")


def test_a_duration_in_words_is_a_wait() -> None:
    assert words_of(tag("Dossier traité en une semaine."), "delais") == ("en une semaine",)


def test_a_negated_duration_is_no_praise() -> None:
    assert tag("Pas de réponse à mes mails depuis trois semaines.").tone == "irritant"


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Je n'ai rien compris au courrier.", "clarte"),
        ("On ne comprend rien au formulaire.", "clarte"),
        ("Rien compris aux explications.", "clarte"),
        ("Elle n'a pas compris ma demande.", "comprehension"),
        ("Il m'a pas compris.", "comprehension"),
        ("J'ai été bien compris.", "comprehension"),
    ],
)
def test_who_did_not_understand_decides_clarity_or_comprehension(text: str, theme: str) -> None:
    assert themes_of(text) - {"autre"} == {theme}


def test_an_elided_article_glued_to_a_word_is_read() -> None:
    assert themes_of("trop dattente") == {"delais"}
    assert themes_of("pas lecoute du tout") == {"comprehension"}


def test_a_negated_statement_without_an_opinion_word_is_an_irritant() -> None:
    tagging = tag("Je n'ai jamais reçu ma carte.")
    assert tagging.tone == "irritant"
    assert tagging.tone_words == ("n'ai jamais",)
    assert tag("On ne trouve pas l'entrée.").tone == "irritant"


@pytest.mark.parametrize("text", ["Je ne sais pas.", "Pas d'avis particulier.", "Rien."])
def test_nothing_to_say_with_a_negation_stays_neutral(text: str) -> None:
    assert tag(text).tone == "neutre"


def test_a_thing_named_in_passing_is_no_theme_beside_a_judged_one() -> None:
    assert themes_of("Mon courrier est resté sans réponse.") == {"prise_en_charge"}
    assert themes_of("On m'a bien aidé à remplir le formulaire.") == {"prise_en_charge"}
    assert themes_of("Formulaire en ligne simple à remplir.") == {"clarte"}


def test_a_room_is_not_dirty_once_doubled_letters_are_collapsed() -> None:
    # « salle » collapsed to « sale » made « ne marchait pas dans la salle » praise
    assert tag("Le chauffage ne marchait pas dans la salle.").tone == "irritant"
    assert tag("La salle d'attente est propre.").tone == "satisfaction"


def test_easy_or_hard_to_understand_is_clarity() -> None:
    assert themes_of("Les courriers devraient être plus simples à comprendre.") == {"clarte"}
    assert themes_of("Il n'a pas cherché à comprendre.") == {"comprehension"}


def test_a_benefit_is_not_help() -> None:
    assert themes_of("Réponse rapide à ma demande d'aide au logement.") == {"delais"}


@pytest.mark.parametrize(
    "text",
    ["J'ai appelé pour un changement d'adresse.", "Je suis venue pour mon formulaire."],
)
def test_a_topic_mentioned_without_an_opinion_is_no_theme(text: str) -> None:
    assert tag(text) == Tagging((), "neutre", ())


@pytest.mark.parametrize(
    "text",
    [
        "Il faudrait plus de guichets.",
        "Ce serait bien d'ouvrir le samedi.",
        "Vous devriez rappeler les gens.",
        "Pourquoi ne pas proposer des rendez-vous en ligne ?",
    ],
)
def test_suggestions(text: str) -> None:
    assert tag(text).tone == "suggestion"


def test_mixed_praise_and_complaint_is_an_irritant_with_both_themes() -> None:
    tagging = tag("Personnel charmant mais dossier perdu deux fois.")
    assert tagging.theme_names == {"courtoisie", "prise_en_charge"}
    assert tagging.tone == "irritant"


@pytest.mark.parametrize("text", ["", "   ", "?!", "1234", "Je suis venu pour ma carte."])
def test_nothing_to_say_is_neutral_with_no_theme(text: str) -> None:
    assert tag(text) == Tagging((), "neutre", ())


def test_ne_pas_with_only_small_words_between_is_a_negated_statement() -> None:
    # « qu'on n'a pas », « ce n'est pas »: the verb between ne and pas is a stopword
    assert tag("Ils réclament une attestation qu'on n'a pas.").tone == "irritant"
    assert tag("Pour le dossier, ce n'est pas ça.").tone == "irritant"
    assert tag("Je n'ai rien à ajouter.").tone == "neutre"


def test_a_trouble_decides_only_a_verbatim_without_opinion() -> None:
    assert tag("J'ai encore un souci avec mes droits.").tone == "irritant"
    assert tag("La conseillère a réglé mon souci.").tone == "satisfaction"
    assert tag("Aucun problème, tout s'est passé comme prévu.").tone == "satisfaction"
    assert tag("Je suis venue pour un problème de carte.").tone == "neutre"


def test_only_nothing_to_say_keeps_a_negated_statement_neutral() -> None:
    # « en ligne », « tout le monde »... are neutral words, not « rien à signaler »
    assert tag("Pas de rendez-vous en ligne avant juin.").tone == "irritant"
    assert tag("Tout le monde n'a pas internet.").tone == "irritant"
    assert tag("Aucune idée.").tone == "neutre"
    assert tag("Je n'ai aucun commentaire à faire.").tone == "neutre"


def test_a_frequency_is_no_wait_and_rules_are_not_settled() -> None:
    assert tag("Je viens tous les mois pour pointer.") == Tagging((), "neutre", ())
    assert "prise_en_charge" not in themes_of("On m'a récité le règlement, pas mon cas.")
    assert tag("Je dois renvoyer mon attestation demain.").tone == "neutre"


def test_a_ligature_is_read_as_its_letters() -> None:
    # « cœur » lost its « œ » (no Unicode decomposition) and read as « c ur »
    assert tag("Elle a pris mon dossier à cœur.").tone == "satisfaction"


def test_user_giving_up_is_no_handling() -> None:
    assert themes_of("Ligne toujours occupée, j'ai abandonné.") == {"facilite_contact"}
    assert themes_of("On se sent abandonnés.") == {"prise_en_charge"}


def test_a_trouble_after_a_negated_verb_is_no_praise() -> None:
    # « ils comprennent rien à nos problèmes »: the negation is the verb's, not « pas de souci »
    assert tag("Ils ne s'intéressent jamais à nos soucis.").tone == "irritant"
    assert tag("Je n'ai eu aucun souci.").tone == "satisfaction"
    assert tag("Jamais de problème avec eux.").tone == "satisfaction"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Je remercie toute l'équipe.", "satisfaction"),
        ("Courrier précis.", "satisfaction"),
        ("Franchement dommage.", "irritant"),
        ("Ras le bol.", "irritant"),
        ("Démarche inutile.", "irritant"),
    ],
)
def test_thanks_and_regrets_are_opinion_words(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    "text",
    [
        "Toujours aucun retour.",
        "Elle s'est chargée de tout.",
        "Il m'a guidé pas à pas.",
        "On se sent abandonné.",
        "Débrouillez-vous, m'a-t-on dit.",
        "Le conseiller a tout repris.",
    ],
)
def test_follow_up_words_are_the_handling(text: str) -> None:
    assert "prise_en_charge" in themes_of(text)


def test_trigger_words_keep_their_accents_and_case_as_written() -> None:
    tagging = tag("Au TÉLÉPHONE personne n'a décroché, Délai trop long.")
    assert words_of(tagging, "facilite_contact") == ("TÉLÉPHONE", "décroché")
    assert words_of(tagging, "delais") == ("Délai", "long")
    assert tagging.tone_words == ("décroché", "trop", "long")


def test_a_duration_and_a_number_of_times_come_back_as_written() -> None:
    tagging = tag("Dossier perdu plusieurs fois, sans réponse depuis 3 semaines.")
    assert words_of(tagging, "delais") == ("depuis", "3 semaines")
    assert "plusieurs fois" in tagging.tone_words
    assert words_of(tag("J'ai dû expliquer 4 fois ma situation."), "prise_en_charge") == (
        "expliquer 4 fois",
    )
    assert words_of(tag("Attente de 1h30 au guichet."), "delais") == ("Attente", "1h30")


def test_words_a_step_rewrote_come_back_whole() -> None:
    # « pas de problème » is read as one token, « ﬁ » and « œ » as two letters, and an accent
    # typed as a combining mark (NFD) follows its letter: the words are still the user's
    assert tag("Pas de problème, merci").tone_words == ("Pas de problème", "merci")
    nfd = unicodedata.normalize("NFD", "Personne n'a décroché, téléphone saturé.")
    assert tag(nfd).tone_words == tuple(
        unicodedata.normalize("NFD", w) for w in ("décroché", "saturé")
    )
    assert tag("Elle a pris mon dossier à cœur.").tone_words == ("cœur",)
    assert tag("Conseillère très eﬃcace.").tone_words == ("eﬃcace",)


@pytest.mark.parametrize(
    "text",
    [
        "Mme [nom] très aimable, rappel au [téléphone] jamais fait.",
        "aimable[nom]merci",
        "Attente [NIR] de 3 semaines [IBAN]",
    ],
)
def test_a_redaction_tag_is_never_a_trigger_word(text: str) -> None:
    tagging = tag(text)
    words = [w for t in tagging.themes for w in t.words] + list(tagging.tone_words)
    assert words
    assert not [w for w in words if "[" in w or "]" in w]


def test_a_misspelled_word_comes_back_misspelled_as_written() -> None:
    tagging = tag("ils mont jamais rapeller, acceuil nul, tro long")
    assert words_of(tagging, "prise_en_charge") == ("rapeller",)
    assert words_of(tagging, "courtoisie") == ("acceuil",)
    assert tagging.tone_words == ("rapeller", "nul", "tro", "long")


def test_every_trigger_word_of_the_corpus_is_in_its_verbatim() -> None:
    for row in load_corpus():
        text = str(row["text"])
        tagging = tag(text)
        written = " ".join(text.split())
        for word in [w for t in tagging.themes for w in t.words] + list(tagging.tone_words):
            assert word and word in written, (word, text)


def load_corpus() -> list[dict[str, object]]:
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def test_the_corpus_is_labelled_with_known_themes_and_tones() -> None:
    rows = load_corpus()
    assert len(rows) >= 250
    held_out = [row for row in rows if row["split"] == "heldout"]
    # No held-out line while a fresh blind batch is being written (each measured batch becomes
    # tune material); once it is in, it is large enough to measure every theme on (one writer's
    # batch of ~400 lines).
    assert not held_out or len(held_out) >= 300
    for row in rows:
        assert set(row["themes"]) <= set(THEMES)  # type: ignore[call-overload]
        assert row["tone"] in TONES


def test_precision_and_recall_on_the_held_out_part_stay_at_their_measured_floor() -> None:
    rows = load_corpus()
    # While the corpus has no held-out line (the 393 measured ones became tune material and a
    # fresh blind batch is being written), the floors are checked on the tune split instead:
    # a weaker check (the lexicon was tuned on it) until the lead adds the batch and re-measures.
    split = "heldout" if any(row["split"] == "heldout" for row in rows) else "tune"
    cases = [
        (frozenset(row["themes"]), str(row["tone"]), tag(str(row["text"])))  # type: ignore[call-overload]
        for row in rows
        if row["split"] == split
    ]
    assert cases
    figures = measure(cases)
    below = {
        label: (figures[label]["precision"], figures[label]["recall"])
        for label, (precision, recall) in HELD_OUT_MEASURED.items()
        if figures[label]["precision"] < precision - MARGIN
        or figures[label]["recall"] < recall - MARGIN
    }
    assert below == {}


# Round eight (the 393 earlier held-out lines became tune material): general families, each
# checked on sentences the corpus does not hold.


@pytest.mark.parametrize(
    "text",
    [
        "Toujours aucune nouvelle de ma demande.",
        "Je n'ai jamais eu de nouvelles.",
        "Sans nouvelles depuis l'envoi.",
        "J'ai relancé, toujours rien.",
        "Pas de réponse à mes deux courriers.",
        "jamais eu de reponse a ma reclamation",
        "Toujours pas de retour sur mon dossier.",
    ],
)
def test_a_request_not_followed_up_is_the_handling(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


@pytest.mark.parametrize(
    "text",
    [
        "On m'a redemandé trois fois mon avis d'imposition.",
        "J'ai envoyé 3 fois les papiers.",
        "On me réclame toujours la même attestation.",
        "Encore le même justificatif à fournir.",
    ],
)
def test_a_document_asked_again_and_again_is_the_handling(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


@pytest.mark.parametrize(
    "text",
    [
        "Renvoyée de bureau en bureau.",
        "On passe d'un guichet à l'autre.",
        "Mon dossier est passé entre trop de mains.",
        "On tourne en rond.",
        "Ballottée entre deux services.",
        "Service complètement désorganisé.",
        "Personne ne s'en occupe.",
        "Mon dossier a été laissé de côté.",
    ],
)
def test_a_runaround_or_a_request_left_aside_is_the_handling(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


def test_where_a_request_stands_is_the_handling() -> None:
    tagging = tag("Personne n'a su me dire où en était ma demande.")
    assert tagging.theme_names == {"prise_en_charge"}
    assert tagging.tone == "irritant"
    assert tag("Il a pris ma situation à cœur.").theme_names == {"prise_en_charge"}


@pytest.mark.parametrize(
    "text",
    [
        "Ils ont vu l'erreur et l'ont corrigée.",
        "Le conseiller a reconnu l'erreur.",
        "Ils ont corrigé leur erreur.",
    ],
)
def test_an_error_seen_or_put_right_is_praise(text: str) -> None:
    tagging = tag(text)
    assert tagging.theme_names == {"prise_en_charge"}
    assert tagging.tone == "satisfaction"


def test_a_refusal_negates_what_follows() -> None:
    assert tag("Il a refusé de m'aider.").tone == "irritant"
    assert tag("La conseillère a refusé de m'écouter.").theme_names == {"comprehension"}


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Service formidable.", "satisfaction"),
        ("Personnel remarquable, chapeau.", "satisfaction"),
        ("Accueil extra, cool.", "satisfaction"),
        ("Très sérieux.", "satisfaction"),
        ("Pitoyable.", "irritant"),
        ("Je suis mécontent.", "irritant"),
        ("Quelle déception.", "irritant"),
        ("Un vrai cauchemar, c'est épuisant.", "irritant"),
        ("Franchement frustrant.", "irritant"),
        ("Ce n'est pas normal.", "irritant"),
        ("Le numéro indiqué est faux.", "irritant"),
        ("mrc bcp", "satisfaction"),
    ],
)
def test_opinions_in_words_the_lexicon_lacked(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    "text",
    ["C'est correct, sans plus.", "Bien, sans plus.", "Pas d'opinion.", "Pas grand-chose à dire."],
)
def test_a_shrug_or_no_opinion_is_neutral(text: str) -> None:
    assert tag(text).tone == "neutre"


def test_the_users_own_plight_is_no_complaint() -> None:
    assert tag("Très patiente face à mon retard.").tone == "satisfaction"
    assert tag("Elle a été gentille, vu ma situation difficile.").tone == "satisfaction"
    assert tag("Ils ont réglé mon trop-perçu.").tone == "satisfaction"


def test_less_than_a_duration_is_praise() -> None:
    assert tag("Traité en moins de 2 jours.").tone == "satisfaction"


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Il m'a parlé comme à un chien.", "courtoisie"),
        ("On nous regarde de haut.", "courtoisie"),
        ("Au téléphone, que de la musique.", "facilite_contact"),
        ("Les infos disent tout et son contraire.", "clarte"),
        ("Carte reçue dans les délais.", "delais"),
        ("Rappelée dans la demi-heure.", "delais"),
        ("Traité en moins de 2 jours.", "delais"),
        ("Le site est mal fait.", "autre"),
        ("Elle a répondu à toutes mes questions.", "reponse_personnalisee"),
        ("Enfin une vraie réponse.", "reponse_personnalisee"),
        ("Conseiller qui connaît son sujet.", "reponse_personnalisee"),
    ],
)
def test_broader_theme_families(text: str, theme: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone != "neutre"


@pytest.mark.parametrize(
    "text",
    [
        "Personne n'a donné suite à ma demande.",
        "Ma réclamation est restée lettre morte.",
        "Ils se renvoient la responsabilité.",
        "Personne ne prend la responsabilité de mon dossier.",
        "On m'a fait tourner en bourrique.",
        "Je n'ai pas été rappelée comme convenu.",
    ],
)
def test_more_ways_to_say_a_request_was_dropped(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


def test_a_request_followed_up_as_agreed_or_finished_is_praise() -> None:
    assert tag("J'ai été rappelée comme convenu.").theme_names == {"prise_en_charge"}
    assert tag("Démarche finalisée sur place.").tone == "satisfaction"
    assert tag("Je suis venue accompagner ma mère.").tone == "neutre"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Rien à redire.", "satisfaction"),
        ("Rien à reprocher.", "satisfaction"),
        ("Que du bonheur.", "satisfaction"),
        ("Ça laisse à désirer.", "irritant"),
        ("Incompétence totale.", "irritant"),
        ("Ils s'en fichent.", "irritant"),
        ("On se fout de nous.", "irritant"),
        ("Je suis à bout.", "irritant"),
        ("J'en ai assez.", "irritant"),
        ("Plus jamais.", "irritant"),
        ("Service public à la dérive.", "irritant"),
    ],
)
def test_more_opinions_the_lexicon_lacked(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Accueil exécrable.", "courtoisie"),
        ("Personnel antipathique.", "courtoisie"),
        ("La dame était odieuse.", "courtoisie"),
        ("Il a haussé la voix.", "courtoisie"),
        ("Elle n'a rien voulu entendre.", "comprehension"),
        ("Elle n'a rien voulu savoir.", "comprehension"),
        ("Aucune confidentialité au guichet.", "autre"),
    ],
)
def test_more_complaints_with_their_theme(text: str, theme: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == "irritant"


def test_what_is_done_instead_is_not_done() -> None:
    # « au lieu de m'écouter »: read as « sans m'écouter »
    tagging = tag("Il regardait son écran au lieu de m'écouter.")
    assert tagging.tone == "irritant"
    assert "comprehension" in tagging.theme_names


@pytest.mark.parametrize(
    "text",
    ["Pensez à mettre un distributeur d'eau.", "Mettez plus de guichets.", "Embaucher du monde."],
)
def test_an_imperative_opening_is_a_suggestion(text: str) -> None:
    assert tag(text).tone == "suggestion"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Service pourri.", "irritant"),  # « pourri », not « pourrions »
        ("Je propose des horaires plus larges.", "suggestion"),
        ("On m'a engueulé devant tout le monde.", "irritant"),
        ("J'ai l'impression de parler à un mur.", "irritant"),
    ],
)
def test_rotten_is_no_suggestion_and_i_propose_is_one(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("personne s'occupe de rien ici", "prise_en_charge", "irritant"),
        ("Personne ne m'a tenu au courant.", "prise_en_charge", "irritant"),
        ("On m'a tenue au courant à chaque étape.", "prise_en_charge", "satisfaction"),
        ("Versement arrivé en avance.", "delais", "satisfaction"),
        (
            "Le conseiller connaissait parfaitement mon dossier.",
            "reponse_personnalisee",
            "satisfaction",
        ),
    ],
)
def test_kept_informed_sms_nobody_and_early(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Je ne sais pas quoi faire.", "clarte", "irritant"),
        ("On ne sait jamais comment procéder.", "clarte", "irritant"),
        ("J'ai enfin compris mes droits.", "clarte", "satisfaction"),
        ("Impossible de les avoir au téléphone.", "facilite_contact", "irritant"),
        ("On m'a laissé repartir sans rien.", "prise_en_charge", "irritant"),
        ("Je suis repartie bredouille.", "prise_en_charge", "irritant"),
        ("Personne n'est au courant de mon dossier.", "prise_en_charge", "irritant"),
        ("Personnel agréable.", "courtoisie", "satisfaction"),
        ("Pas assez de places assises.", "autre", "irritant"),
    ],
)
def test_what_to_do_reaching_someone_leaving_empty_handed(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Je ne sais pas quoi dire.", "neutre"),
        ("Je n'ai rien de plus à dire.", "neutre"),
        ("Un numéro direct serait le bienvenu.", "suggestion"),
    ],
)
def test_nothing_more_to_say_and_a_welcome_wish(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    "word", ["calme", "convivial", "fiable", "organisé", "soigné", "consciencieux", "réactif"]
)
def test_more_praise_words(word: str) -> None:
    assert tag(f"Service {word}.").tone == "satisfaction"


@pytest.mark.parametrize(
    "word",
    ["bâclé", "chaotique", "incohérent", "inefficace", "injuste", "kafkaïen", "stressant", "dur"],
)
def test_more_complaint_words(word: str) -> None:
    assert tag(f"Service {word}.").tone == "irritant"


def test_comfort_is_the_premises() -> None:
    assert tag("Salle d'attente inconfortable.").theme_names == {"autre"}
    assert tag("Sièges confortables.").tone == "satisfaction"


@pytest.mark.parametrize(
    "text",
    [
        "Mon dossier a été mis de côté.",
        "Ma demande a été gelée.",
        "Dossier négligé.",
        "Ma demande est au point mort.",
        "Dossier en souffrance.",
        "Silence radio.",
        "Zéro suivi.",
        "On ne m'a jamais donné de nouvelles.",
        "Ils ont fait traîner les choses.",
    ],
)
def test_a_request_set_aside_or_stalled_is_the_handling(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


def test_a_request_put_right_or_put_first_is_praise() -> None:
    assert tag("Mon dossier a été rectifié.").theme_names == {"prise_en_charge"}
    assert tag("Mon dossier a été traité en priorité.").tone == "satisfaction"
    assert tag("On ne comprend rien aux courriers de régularisation.").theme_names == {"clarte"}


def test_zero_is_a_negator_and_anormal_a_complaint() -> None:
    assert tag("Zéro attente.").tone == "satisfaction"
    assert tag("C'est anormal.").tone == "irritant"
    assert tag("Traité n'importe comment.").tone == "irritant"


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Réponse à côté.", "reponse_personnalisee", "irritant"),
        ("Des termes techniques partout, c'est pénible.", "clarte", "irritant"),
        ("On ne peut pas leur écrire.", "facilite_contact", "irritant"),
        ("On les joint facilement.", "facilite_contact", "satisfaction"),
        ("Accessible par téléphone et par mail.", "facilite_contact", "satisfaction"),
        ("Plus aucun rendez-vous disponible.", "facilite_contact", "irritant"),
        ("Délai de traitement énorme.", "delais", "irritant"),
        ("Traitement express.", "delais", "satisfaction"),
        ("Pas d'abri dehors.", "autre", "irritant"),
    ],
)
def test_more_theme_families_from_probe_sentences(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


def test_the_website_is_a_theme_only_alone() -> None:
    # « site » is never judged itself: « pas clairs sur le site » is clarity, not the website
    assert themes_of("Les documents ne sont pas clairs sur le site.") == {"clarte"}
    assert themes_of("Le site ne marche pas le soir.") == {"autre"}


@pytest.mark.parametrize(
    "text",
    [
        "J'ai perdu ma carte vitale.",
        "Rendez-vous pour ma carte vitale perdue.",
        "J'ai perdu mon emploi, je viens m'inscrire.",
        "Rendez-vous de suivi avec ma conseillère.",
        "Je viens chaque mois pointer.",
    ],
)
def test_what_the_user_lost_or_a_routine_visit_is_neutral(text: str) -> None:
    assert tag(text) == Tagging((), "neutre", ())


def test_a_file_they_lost_is_still_the_handling() -> None:
    assert themes_of("Ils ont perdu mes papiers deux fois.") == {"prise_en_charge"}


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Chaque agent me donne une information différente.", "clarte", "irritant"),
        ("J'ai appelé cinq fois, dossier toujours bloqué.", "facilite_contact", "irritant"),
        ("Mon dossier est passé à la trappe.", "prise_en_charge", "irritant"),
        ("Elle a étudié mon cas personnellement.", "reponse_personnalisee", "satisfaction"),
    ],
)
def test_different_answers_calling_again_and_again_a_case_studied(
    text: str, theme: str, tone: str
) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Pas à la hauteur.", "irritant"),
        ("À la hauteur de mes attentes.", "satisfaction"),
        ("Je suis ressortie en pleurs.", "irritant"),
    ],
)
def test_up_to_the_mark_and_tears(text: str, tone: str) -> None:
    assert tag(text).tone == tone


def test_sms_elisions_and_a_joke() -> None:
    assert tag("impossible davoir un rdv").theme_names == {"facilite_contact"}
    assert tag("cest une blague").tone == "irritant"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Malheureusement, le dossier est toujours là.", "irritant"),
        ("Accueil à améliorer.", "irritant"),
        ("Ça s'est amélioré.", "satisfaction"),
        ("Moins d'attente qu'avant.", "satisfaction"),
    ],
)
def test_regret_and_improvement(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("C'est toujours la même chose.", "irritant"),
        ("Je me suis sentie humiliée.", "irritant"),
        ("On nous prend pour des numéros.", "irritant"),
        ("Je n'ai jamais été aussi bien reçue.", "satisfaction"),
        ("Que des compliments.", "satisfaction"),
        ("Une équipe en or.", "satisfaction"),
        ("On sent qu'ils aiment leur travail.", "satisfaction"),
        ("Aucun reproche.", "satisfaction"),
        ("Tout s'est déroulé sans accroc.", "satisfaction"),
        ("Dossier en standby.", "irritant"),
    ],
)
def test_set_phrases_of_praise_and_complaint(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Délais à rallonge.", "delais", "irritant"),
        ("Tout a été fait en un quart d'heure.", "delais", "satisfaction"),
        ("Le formulaire est un casse-tête.", "clarte", "irritant"),
        ("Sur le site on s'y perd.", "clarte", "irritant"),
        ("J'ai tout compris.", "clarte", "satisfaction"),
        ("On perd du temps pour rien.", "delais", "irritant"),
    ],
)
def test_waits_and_puzzles_in_set_phrases(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        (
            "Conseillère aux petits soins, elle a repris tout mon dossier.",
            "prise_en_charge",
            "satisfaction",
        ),
        ("Ma demande dort quelque part depuis deux mois.", "prise_en_charge", "irritant"),
        ("Personne ne s'est soucié de mon dossier.", "prise_en_charge", "irritant"),
        ("L'agent m'a tourné le dos en plein milieu de ma phrase.", "courtoisie", "irritant"),
        ("Chaque courrier dit quelque chose de différent.", "clarte", "irritant"),
        ("Des sigles partout dans le courrier.", "clarte", "irritant"),
    ],
)
def test_a_sleeping_file_a_turned_back_and_acronyms(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Mon dossier a fait trois fois le tour des services.", "prise_en_charge", "irritant"),
        ("Joindre quelqu'un relève de l'exploit.", "facilite_contact", "irritant"),
        ("On se fait rembarrer dès qu'on pose une question.", "courtoisie", "irritant"),
        ("Le courrier ne précise pas la date limite.", "clarte", "irritant"),
        ("Le lieu est triste et mal entretenu.", "autre", "irritant"),
        ("Le traitement prend un temps infini.", "delais", "irritant"),
    ],
)
def test_the_tour_of_the_services_and_other_set_phrases(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


def test_it_makes_me_ill_and_thanks_infinitely() -> None:
    assert tag("Ça me rend malade.").tone == "irritant"
    assert tag("Merci infiniment.").tone == "satisfaction"


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Remboursement toujours pas arrivé.", "delais", "irritant"),
        ("Ils se sont trompés de dossier.", "prise_en_charge", "irritant"),
        ("Aucun endroit pour s'asseoir.", "autre", "irritant"),
        ("Personne ne nous a salués.", "courtoisie", "irritant"),
        ("Une personne charmante et pleine d'humour.", "courtoisie", "satisfaction"),
    ],
)
def test_a_refund_a_mistaken_file_a_seat_a_greeting(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


def test_a_refund_beside_a_judged_theme_is_no_wait() -> None:
    assert themes_of("Aucune explication claire sur mon remboursement.") == {"clarte"}
    assert tag("On nous oblige à tout faire sur internet.").tone == "irritant"


@pytest.mark.parametrize(
    ("text", "theme", "tone"),
    [
        ("Il faut tout reprendre depuis le début.", "prise_en_charge", "irritant"),
        ("Sans ressources à cause de leur erreur.", "prise_en_charge", "irritant"),
        ("Il ne m'a pas cru.", "comprehension", "irritant"),
        ("La queue déborde jusque dans la rue.", "delais", "irritant"),
        ("Personne devant moi, reçu aussitôt.", "delais", "satisfaction"),
        ("La conseillère lisait un script.", "reponse_personnalisee", "irritant"),
    ],
)
def test_starting_over_their_error_disbelief_and_a_script(text: str, theme: str, tone: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == tone


def test_an_appointment_time_is_no_wait() -> None:
    assert tag("J'étais là pour mon rendez-vous de 14h.") == Tagging((), "neutre", ())


# Round nine: the 400 lines written blind by another engineer (measured once, now tune material)
# grouped by cause; each family below is checked on sentences the corpus does not hold.


@pytest.mark.parametrize(
    "text",
    [
        "Pas de suggestion.",
        "Rien à suggérer pour l'instant.",
        "Aucune suggestion particulière",
        "Non merci, ça ira.",
        "pas concernée",
        "Je préfère ne pas me prononcer.",
        "Je ne vois rien d'autre.",
        "Pas pour le moment.",
        "Pas vraiment.",
        "Non, pas spécialement.",
        "Pas d'autre question.",
        "Je ne peux pas encore juger.",
    ],
)
def test_saying_there_is_nothing_to_suggest_is_neutral(text: str) -> None:
    assert tag(text) == Tagging((), "neutre", ())


@pytest.mark.parametrize(
    "text",
    [
        "Souriez un peu plus au guichet.",
        "Répondez aux mails dans la semaine.",
        "Si le dossier part dans un autre service, prévenez-nous.",
        "plus de créneaux le samedi svp",
        "Un peu plus de patience serait appréciée.",
        "On devrait pouvoir joindre son conseiller directement.",
        "Former les agents à l'écoute.",
        "Simplifier les courriers.",
        "Pourquoi pas un accueil le samedi ?",
    ],
)
def test_a_proposal_as_users_write_it_is_a_suggestion(text: str) -> None:
    assert tag(text).tone == "suggestion"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Continuez comme ça !", "satisfaction"),
        ("Rendez-vous à l'heure, parfait.", "satisfaction"),
        ("contactez-moi au [téléphone]", "neutre"),
        ("On m'avait dit que ce serait réglé en mai, toujours rien.", "irritant"),
    ],
)
def test_praise_a_plain_request_or_reported_speech_is_no_suggestion(text: str, tone: str) -> None:
    assert tag(text).tone == tone


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("Pas du tout compris la lettre.", "clarte"),
        ("g rien capté", "clarte"),
        ("On n'a pas compris ma situation.", "comprehension"),
        ("Je ne me suis pas senti compris.", "comprehension"),
        ("Pas compris ce que je demandais.", "comprehension"),
        ("J'avais beau répéter, rien à faire.", "comprehension"),
        ("Il a cru que je voulais une attestation.", "comprehension"),
        ("Elle campait sur sa position.", "comprehension"),
    ],
)
def test_who_understood_follows_what_was_understood(text: str, theme: str) -> None:
    tagging = tag(text)
    assert tagging.theme_names == {theme}
    assert tagging.tone in ("irritant", "satisfaction")


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Horaires d'ouverture trop restreints.", "irritant"),
        ("Fermé le samedi, dommage.", "irritant"),
        ("Une permanence le samedi serait pratique.", "suggestion"),
        ("L'accueil sans rendez-vous, très pratique.", "satisfaction"),
        ("rdv dispo dès le lendemain", "satisfaction"),
    ],
)
def test_opening_hours_and_ways_in_are_ease_of_contact(text: str, tone: str) -> None:
    tagging = tag(text)
    assert "facilite_contact" in tagging.theme_names
    assert "autre" not in tagging.theme_names
    assert tagging.tone == tone


def test_waiting_on_the_phone_is_contact_and_delay_but_a_call_that_solved_it_is_not() -> None:
    assert themes_of("Une heure d'attente au téléphone.") == {"facilite_contact", "delais"}
    assert themes_of("Réglé en 5 minutes au téléphone.") == {"prise_en_charge", "delais"}
    assert themes_of("rdv obtenu en 2 jours") == {"facilite_contact", "delais"}


@pytest.mark.parametrize(
    "text",
    [
        "Je suis venu sans rendez-vous.",
        "Je suis venue avec mon père de 90 ans.",
        "Accompagnée de ma fille.",
        "J'attends la suite.",
        "Toilettes ouvertes au public.",
    ],
)
def test_a_visit_without_appointment_an_age_or_a_companion_is_a_fact(text: str) -> None:
    assert tag(text).tone == "neutre"


@pytest.mark.parametrize(
    "text",
    [
        "on me renvoie vers un autre organisme",
        "Il n'a rien pu faire pour moi.",
        "Mon changement de situation n'a jamais été enregistré.",
        "Ils ont mis ma demande de côté.",
        "Aucune trace de mon dossier.",
        "Il faut tout redire à chaque appel.",
        "Le rendez-vous n'a jamais eu lieu.",
    ],
)
def test_a_request_sent_back_dropped_or_to_repeat_is_the_handling(text: str) -> None:
    tagging = tag(text)
    assert "prise_en_charge" in tagging.theme_names
    assert tagging.tone == "irritant"


def test_processing_time_alone_is_a_delay_the_handling_only_when_judged() -> None:
    assert themes_of("Six mois pour traiter un dossier, trop long.") == {"delais"}
    assert themes_of("Traitement très long.") == {"delais"}
    assert themes_of("Accélérez le traitement svp") == {"delais"}
    assert themes_of("Dossier traité en 48h.") == {"prise_en_charge", "delais"}
    assert themes_of("Il n'a pas pu traiter ma demande.") == {"prise_en_charge"}


@pytest.mark.parametrize(
    "text",
    [
        "Ça ne répond pas à ma question.",
        "On m'envoie la même lettre qu'à tout le monde.",
        "Il m'a recopié un article du site.",
        "Il m'a répondu sur autre chose.",
        "La réponse ne concerne pas mon cas.",
    ],
)
def test_an_answer_beside_my_case_is_no_personal_answer(text: str) -> None:
    tagging = tag(text)
    assert tagging.theme_names == {"reponse_personnalisee"}
    assert tagging.tone == "irritant"


def test_a_file_looked_at_in_detail_is_a_personal_answer() -> None:
    assert themes_of("Elle a regardé mon dossier en détail.") == {"reponse_personnalisee"}


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Ce site est un vrai labyrinthe.", "irritant"),
        ("On ne trouve rien sur ce site.", "irritant"),
        ("Deux courriers, deux montants différents.", "irritant"),
        ("Personne ne m'a dit pourquoi.", "irritant"),
        ("Il m'a donné la marche à suivre.", "neutre"),
        ("Il faudrait un site plus intuitif.", "suggestion"),
    ],
)
def test_lost_on_the_site_or_not_told_why_is_clarity(text: str, tone: str) -> None:
    tagging = tag(text)
    assert tagging.tone == tone
    assert tagging.theme_names == (set() if tone == "neutre" else {"clarte"})


@pytest.mark.parametrize(
    "text",
    [
        "Le questionnaire est trop long.",
        "Questionnaire interminable.",
        "Il faisait froid dans la salle d'attente.",
    ],
)
def test_the_survey_itself_and_the_premises_are_other(text: str) -> None:
    tagging = tag(text)
    assert tagging.theme_names == {"autre"}
    assert tagging.tone == "irritant"


def test_a_box_to_tick_or_a_file_number_is_neither_broken_nor_a_phone() -> None:
    assert "autre" not in themes_of("Aucune case du formulaire ne me correspond, dommage.")
    assert themes_of("Très pratique d'avoir un numéro de dossier.") == set()
    assert themes_of("La page d'accueil du site est claire.") == {"clarte"}


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("L'agent rigolait avec sa collègue.", "irritant"),
        ("Elle soufflait dès que je parlais.", "irritant"),
        ("Il était sur son portable perso pendant le rendez-vous.", "irritant"),
        ("On m'a envoyé balader.", "irritant"),
        ("Une douceur rare.", "satisfaction"),
        ("Les agents papotent pendant qu'on attend.", "irritant"),
        ("Accueil souriant malgré le monde.", "satisfaction"),
    ],
)
def test_rudeness_and_kindness_in_the_writers_words_is_courtesy(text: str, tone: str) -> None:
    tagging = tag(text)
    assert tagging.theme_names == {"courtoisie"}
    assert tagging.tone == tone


def test_no_more_waiting_and_a_fear_that_did_not_come_true_are_praise() -> None:
    assert tag("Plus besoin d'attendre grâce au rappel.").tone == "satisfaction"
    assert tag("J'avais peur de galérer mais tout s'est bien passé.").tone == "satisfaction"


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("ok", "neutre"),
        ("Suggestion : aucune", "neutre"),
        ("Ma suggestion : des rendez-vous le samedi.", "suggestion"),
        ("Avez-vous pensé à ouvrir le samedi ?", "suggestion"),
        ("Envoyer un SMS quand le dossier avance.", "suggestion"),
        ("Envoyer 3 fois les mêmes papiers, c'est épuisant.", "irritant"),
        ("Sachez que j'ai attendu deux heures.", "irritant"),
        ("Je n'ai vraiment pas eu de chance avec ce conseiller.", "irritant"),
    ],
)
def test_a_bare_ok_a_suggestion_named_or_a_wish_opening_on_a_verb(text: str, tone: str) -> None:
    assert tag(text).tone == tone


def test_a_desk_closed_on_a_day_is_contact_an_account_opened_or_a_file_closed_is_not() -> None:
    assert themes_of("Pas d'accueil le mercredi, c'est galère.") == {"facilite_contact"}
    assert themes_of("J'ai ouvert mon espace en ligne sans souci, très simple.") == set()
    assert themes_of("Mon dossier a été fermé sans raison.") == {"prise_en_charge"}


@pytest.mark.parametrize(
    ("text", "themes", "tone"),
    [
        ("Tout se fait sur internet, à mon âge c'est dur.", {"facilite_contact"}, "irritant"),
        ("Je n'ai pas d'ordinateur.", {"facilite_contact"}, "irritant"),
        ("Avec le décalage horaire, on ne vous a jamais.", {"facilite_contact"}, "irritant"),
        ("Ma bourse n'est toujours pas versée.", {"delais"}, "irritant"),
        ("Dossier toujours en attente.", {"delais"}, "irritant"),
        ("Le rendez-vous a été avancé, super.", {"delais"}, "satisfaction"),
        ("Demande rejetée sans motif.", {"prise_en_charge", "clarte"}, "irritant"),
        ("Trop de paperasse.", {"clarte"}, "irritant"),
        ("Foutage de gueule.", set(), "irritant"),
        ("Je parle pas bien français, merci pour votre patience.", {"courtoisie"}, "satisfaction"),
        ("L'agent a refusé de prendre mon dossier.", {"prise_en_charge"}, "irritant"),
        ("Je suis retraité depuis mars.", set(), "neutre"),
        ("Dossier bloqué depuis janvier.", {"prise_en_charge", "delais"}, "irritant"),
    ],
)
def test_voices_of_other_users_online_only_unpaid_rejected_and_since_when(
    text: str, themes: set[str], tone: str
) -> None:
    tagging = tag(text)
    assert tagging.theme_names == themes
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "themes"),
    [
        ("Ma déclaration n'a pas été prise en compte.", {"prise_en_charge"}),
        ("Elle a bien pris en compte mon handicap.", {"reponse_personnalisee"}),
        ("Aucune trace de mon appel.", {"prise_en_charge"}),
        ("Rien ne bouge malgré mes appels.", {"prise_en_charge"}),
        ("Ce serait bien de pouvoir être rappelé.", {"facilite_contact"}),
    ],
)
def test_recorded_or_followed_up_is_the_handling_a_callback_offered_is_contact(
    text: str, themes: set[str]
) -> None:
    assert themes_of(text) == themes


def test_a_shrug_without_a_comma_and_full_slots() -> None:
    assert tag("Accueil correct sans plus.") == Tagging((), "neutre", ())
    assert themes_of("Créneaux complets, rien avant l'été.") == {"facilite_contact"}
    assert themes_of("Proposez des rendez-vous le soir.") == {"facilite_contact"}


@pytest.mark.parametrize(
    "text",
    [
        "J'aurais aimé être prévenue du retard.",
        "Si seulement on avait un seul interlocuteur.",
        "L'idéal serait de tout faire par mail.",
        "Le mieux serait un rappel par SMS.",
    ],
)
def test_a_wish_in_the_conditional_past_or_an_ideal_is_a_suggestion(text: str) -> None:
    assert tag(text).tone == "suggestion"


def test_a_crowded_desk_is_a_place_and_a_crowd_no_rudeness() -> None:
    assert themes_of("Trop de monde à l'accueil.") == {"delais"}
    assert tag("C'est toujours bondé.").tone == "irritant"


@pytest.mark.parametrize(
    ("text", "themes", "tone"),
    [
        ("Pas très aimable au téléphone.", {"courtoisie"}, "irritant"),
        (
            "Pas trop long pour avoir quelqu'un au téléphone.",
            {"delais", "facilite_contact"},
            "satisfaction",
        ),
        ("Personne n'a décroché au téléphone.", {"facilite_contact"}, "irritant"),
        ("Pas de rampe ni d'ascenseur.", {"autre"}, "irritant"),
    ],
)
def test_a_negator_bears_on_the_first_thing_judged_not_on_a_topic_named_after(
    text: str, themes: set[str], tone: str
) -> None:
    tagging = tag(text)
    assert tagging.theme_names == themes
    assert tagging.tone == tone


@pytest.mark.parametrize(
    ("text", "themes", "tone"),
    [
        ("J'ai été suivie par la même conseillère, merci.", {"prise_en_charge"}, "satisfaction"),
        ("La réponse ne tenait pas compte de mon statut.", {"reponse_personnalisee"}, "irritant"),
        ("J'ai eu l'impression de parler dans le vide.", {"comprehension"}, "irritant"),
        ("Elle a reformulé ma demande, parfait.", {"comprehension"}, "satisfaction"),
        ("Je n'ai pas compris ce qu'on attendait de moi.", {"clarte"}, "irritant"),
    ],
)
def test_followed_through_talking_into_the_void_and_what_was_expected_of_me(
    text: str, themes: set[str], tone: str
) -> None:
    tagging = tag(text)
    assert tagging.theme_names == themes
    assert tagging.tone == tone


def test_a_step_named_in_passing_is_no_clarity_and_we_will_see_is_no_praise() -> None:
    assert themes_of("Démarche faite en 5 minutes, génial.") == {"delais"}
    assert themes_of("Démarches trop compliquées.") == {"clarte"}
    assert tag("On verra bien.") == Tagging((), "neutre", ())


def test_no_decision_yet_is_the_handling_and_a_long_survey_no_wait() -> None:
    assert themes_of("Ça traîne, toujours pas de décision.") == {"delais", "prise_en_charge"}
    assert themes_of("Le questionnaire est beaucoup trop long.") == {"autre"}


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Peut-être prévoir plus de guichets le lundi.", "suggestion"),
        ("Merci de rappeler les gens quand vous le dites.", "suggestion"),
        ("N'hésitez pas à mettre plus de chaises.", "suggestion"),
        ("ce seré bien d'avoir 1 interlocuteur unique", "suggestion"),
        ("Merci de votre accueil.", "satisfaction"),
        ("Merci de m'avoir aidé.", "satisfaction"),
        ("Gardez ce service téléphonique, il est très utile.", "satisfaction"),
    ],
)
def test_a_request_after_a_filler_or_merci_de_is_a_suggestion_thanks_are_not(
    text: str, tone: str
) -> None:
    assert tag(text).tone == tone


def test_a_user_lost_is_clarity_and_an_error_on_screen_is_other() -> None:
    assert themes_of("Je me suis perdue sur le site pour trouver le formulaire.") == {"clarte"}
    assert themes_of("Le site affiche une erreur à chaque connexion.") == {"autre"}
    assert themes_of("Message d'erreur sur l'appli, impossible de valider.") == {"autre"}
    assert themes_of("Ils ont fait une erreur dans mon dossier.") == {"prise_en_charge"}


# Round ten (the second blind batch, 384 lines, became tune material): families grouped by cause,
# each checked on sentences of new situations the corpus does not hold.


@pytest.mark.parametrize(
    ("text", "themes"),
    [
        ("J'ai déclaré mon chiffre d'affaires depuis l'appli, très simple.", set()),
        ("Impossible de vous appeler depuis l'étranger.", {"facilite_contact"}),
        ("Depuis la Guadeloupe, joindre un conseiller est facile.", {"facilite_contact"}),
        ("Ma demande de pension est bloquée depuis mars.", {"delais", "prise_en_charge"}),
    ],
)
def test_depuis_before_a_place_or_a_device_is_from_not_a_wait(text: str, themes: set[str]) -> None:
    assert themes_of(text) == themes


@pytest.mark.parametrize(
    ("text", "tone"),
    [
        ("Je ne m'attendais pas à un rendez-vous en visio aussi efficace.", "satisfaction"),
        ("Exactement ce que j'attendais pour ma demande de RSA, bravo.", "satisfaction"),
        ("On s'attend à mieux d'une préfecture.", "irritant"),
    ],
)
def test_expecting_is_no_wait_and_a_surprise_no_negation(text: str, tone: str) -> None:
    tagging = tag(text)
    assert "delais" not in tagging.theme_names
    assert tagging.tone == tone


def test_ne_que_restricts_and_negates_nothing() -> None:
    assert tag("Je ne peux que remercier la conseillère MDPH, très aimable.").tone == "satisfaction"
    assert tag("On n'a eu que des explications claires.").theme_names == {"clarte"}
    assert tag("On n'a eu que des explications claires.").tone == "satisfaction"


@pytest.mark.parametrize(
    "text",
    [
        "Pas d'observation particulière, merci.",
        "Aucune remarque pour le moment, merci beaucoup.",
        "Sans objet.",
        "je sais pas trop",
        "Rien à ajouter à ce que j'ai dit au conseiller par téléphone.",
    ],
)
def test_nothing_to_say_with_thanks_or_a_topic_after_it_is_neutral(text: str) -> None:
    tagging = tag(text)
    assert (tagging.tone, tagging.theme_names) == ("neutre", frozenset())


def test_how_the_agent_spoke_and_the_user_being_late_are_no_wait() -> None:
    assert "delais" not in themes_of("Elle a parlé lentement pour que je comprenne, merci.")
    assert tag("Elle a parlé lentement pour que je comprenne, merci.").tone == "satisfaction"
    assert "delais" not in themes_of("Le monsieur parlait trop vite, j'ai rien compris au tchat.")
    assert themes_of("Reçue quand même malgré mon retard, très gentil.") == {"courtoisie"}
    assert "delais" not in themes_of("Question sur la déclaration des heures, réponse claire.")


@pytest.mark.parametrize(
    ("text", "themes"),
    [
        (
            "Un seul interlocuteur du début à la fin pour ma création d'entreprise.",
            {"prise_en_charge"},
        ),
        ("Enfin un interlocuteur qui m'explique clairement mes impôts.", {"clarte"}),
        ("Ma demande de carte de séjour a été transférée 3 fois.", {"prise_en_charge"}),
        ("Personne ne m'a appelée comme promis pour mon RSA.", {"prise_en_charge"}),
        ("Aucune réponse à mon courriel depuis un mois.", {"prise_en_charge", "delais"}),
        ("Après ma création d'entreprise je me suis senti livré à moi-même.", {"prise_en_charge"}),
        ("On est lâché dans la nature avec la MDPH.", {"prise_en_charge"}),
        ("Elle a tout démêlé avec ma caisse de retraite.", {"prise_en_charge"}),
        ("On m'a fait entrer et personne n'est revenu me chercher.", {"prise_en_charge"}),
    ],
)
def test_who_follows_the_file_is_the_handling(text: str, themes: set[str]) -> None:
    assert themes_of(text) == themes


def test_still_not_received_is_a_delay_and_after_a_duration_also_the_handling() -> None:
    assert themes_of("Toujours pas reçu ma notification de pension.") == {"delais"}
    assert themes_of("Toujours pas reçu mon titre de séjour après 5 mois.") == {
        "delais",
        "prise_en_charge",
    }
    assert themes_of("Dossier toujours pas traité, c'est lamentable.") == {"prise_en_charge"}


def test_told_to_wait_is_no_courtesy_regards_are_and_a_letter_closing_proposes_nothing() -> None:
    assert "courtoisie" not in themes_of("On m'a demandé de patienter devant le bureau.")
    assert themes_of("Reçu avec beaucoup d'égards à la préfecture.") == {"courtoisie"}
    tagging = tag("Dossier réglé vite. Veuillez agréer mes salutations distinguées.")
    assert tagging.tone == "satisfaction"


def test_an_answer_fitted_or_beside_my_situation_is_a_personal_answer() -> None:
    assert "reponse_personnalisee" in themes_of(
        "Le conseiller m'a répondu complètement à côté sur ma pension d'invalidité."
    )
    assert "reponse_personnalisee" in themes_of(
        "Enfin une réponse qui colle à ma situation de micro-entrepreneur."
    )


def test_a_duration_beside_a_breakdown_is_how_long_it_is_broken_not_a_wait() -> None:
    assert themes_of("La borne de la CAF est en panne depuis trois semaines.") == {"autre"}
    assert themes_of("Le lecteur d'écran ne marche plus sur le site depuis longtemps.") == {"autre"}
    assert themes_of("Trois semaines d'attente pour un rendez-vous, ascenseur en panne.") == {
        "delais",
        "facilite_contact",
        "autre",
    }


def test_probe_sentences_a_standard_text_a_lost_appointment_and_a_video_call_in_passing() -> None:
    # from round ten's 40 probe sentences in new situations, labelled before the tagger ran
    assert themes_of("On m'a envoyé un texte standard sur ma pension de réversion.") == {
        "reponse_personnalisee"
    }
    assert tag("Le lien ne marchait pas, j'ai perdu mon rendez-vous à la CAF.").theme_names == set()
    assert tag("Le lien ne marchait pas, j'ai perdu mon rendez-vous à la CAF.").tone == "irritant"
    assert themes_of("Rendez-vous en visio, conseiller très aimable.") == {"courtoisie"}
    assert themes_of("Le rendez-vous en visio, c'est pratique.") == {"facilite_contact"}


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        ("je comprends pas", "clarte"),
        ("le conseiller retraite comprenait pas ma demande", "comprehension"),
        ("la conseillère MDPH m'a rappelée jamais", "prise_en_charge"),
    ],
)
def test_spoken_negation_without_ne_negates_the_verb_before_pas(text: str, theme: str) -> None:
    tagging = tag(text)
    assert theme in tagging.theme_names
    assert tagging.tone == "irritant"


def test_spoken_negation_leaves_what_pas_bears_on_after_it() -> None:
    assert tag("ça marche pas, l'appli des impôts").tone == "irritant"
    assert tag("Réponse rapide pas de problème").tone == "satisfaction"


@pytest.mark.parametrize(
    "text",
    [
        "Rendez le formulaire de renouvellement AAH plus lisible.",
        "Le rendez-vous en visio pourrait être plus long.",
        "Les courriers de la CARSAT pourraient être mieux expliqués.",
    ],
)
def test_rendez_without_vous_and_could_be_more_are_proposals(text: str) -> None:
    assert tag(text).tone == "suggestion"


def test_second_probe_batch_a_reminder_a_file_calculated_and_a_site_down_since_yesterday() -> None:
    # from round ten's second batch of 30 probe sentences, labelled before the tagger ran
    assert themes_of("Vous devriez envoyer un SMS de rappel la veille.") == set()
    assert themes_of("Il faudrait envoyer un mail de rappel la veille.") == set()
    assert themes_of("Ma pension a été calculée très vite, merci.") == {"prise_en_charge", "delais"}
    assert themes_of("le site de la préfecture marche pas depuis hier") == {"autre"}


def test_hours_adapted_are_contact_and_not_knowing_whom_to_believe_is_clarity() -> None:
    assert themes_of("Horaires de la CAF pas adaptés aux gens qui travaillent.") == {
        "facilite_contact"
    }
    assert themes_of("Des horaires adaptés aux familles à la MSA, merci.") == {"facilite_contact"}
    assert themes_of("Impôts et URSSAF se contredisent, je ne sais plus qui croire.") == {"clarte"}
    assert themes_of("Ils ne me croient pas quand je dis que j'ai envoyé le papier.") >= {
        "comprehension"
    }


def test_the_users_senses_a_professional_category_and_short_waits_are_no_complaint() -> None:
    assert tag("Conseillère MSA très patiente avec ma mère qui entend mal.").tone == "satisfaction"
    assert tag("J'appelais pour déclarer mes revenus professionnels.").tone == "neutre"
    assert tag("Préfecture : pas de queue ce matin, super.").theme_names == {"delais"}
    assert themes_of("Rappelé au bout de cinq minutes seulement, merci.") >= {"delais"}
    assert tag("Rappelé au bout de cinq minutes seulement, merci.").tone == "satisfaction"
    assert themes_of("Rendez-vous pour mon titre de séjour obtenu la semaine même.") >= {"delais"}


def test_asking_for_help_is_no_handling_and_paid_in_time_is_a_delay() -> None:
    assert themes_of("Agent de la CPAM désagréable alors que je venais demander de l'aide.") == {
        "courtoisie"
    }
    assert themes_of("Grâce à vous j'ai pu toucher ma pension à temps, merci.") == {"delais"}
