"""Themes and tone of a French verbatim (issue #17): a transparent lexicon, no model, no I/O.

`tag(text)` gives zero or more of the questionnaire's seven themes plus `autre`, and one tone,
each with the words of the verbatim that triggered it. How it reads a verbatim:

1. Redaction tags (« [téléphone] », « [email] ») are removed before anything else: they never
   trigger a theme or a tone.
2. Lower case, accents stripped, SMS forms and common misspellings mapped (« tro » → trop,
   « acceuil » → accueil, « tjs » → toujours), doubled letters collapsed so « rapeller » and
   « rappeler » meet; durations (« 3 semaines », « 1h30 ») become one token. Each step keeps
   where its words were in the verbatim, so the words that triggered a tag are given back as
   the user wrote them (« décroché », « 3 semaines », « plusieurs fois »), never folded.
3. The text is cut into clauses (punctuation, « mais »). A negator (pas, jamais, aucun, sans,
   rien, ne…) negates every lexicon word after it in its clause: « pas aimable », « jamais
   rappelé », « aucune réponse »; so do « zéro » and a refusal (« a refusé de m'écouter »), and
   « au lieu de » is read as « sans ».
4. Lexicon entries are stems (prefix match; `$` = exact word; `a|b` = either) or short
   sequences of them; at each place the longest entry wins and consumes its words, so
   « réponse standard » is a generic answer, not the switchboard.
5. Each entry has a polarity when read plainly and when negated (a topic word such as
   « téléphone » is neutral, negated it is a complaint; « attente » negated is praise).
   Tone: a suggestion marker (« il faudrait », « ce serait bien ») → suggestion; else any
   complaint → irritant (mixed praise and complaint counts as an irritant, what managers follow);
   else any praise → satisfaction (unless taken back: « correct, sans plus »); else neutre.
6. The entries that can start on a word are a pure function of the word, remembered per word
   (verbatims share most of their words): the lexicon grows without slowing the tagger.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

THEMES = (
    "reponse_personnalisee",
    "clarte",
    "facilite_contact",
    "comprehension",
    "prise_en_charge",
    "delais",
    "courtoisie",
    "autre",
)
TONES = ("irritant", "satisfaction", "suggestion", "neutre")

REP, CLA, CON, COM, PEC, DEL, COU, AUT = THEMES


@dataclass(frozen=True)
class ThemeTag:
    theme: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Tagging:
    themes: tuple[ThemeTag, ...]
    tone: str
    tone_words: tuple[str, ...]

    @property
    def theme_names(self) -> frozenset[str]:
        return frozenset(t.theme for t in self.themes)


# (pattern, theme or None for tone only, polarity read plainly, polarity when negated)
_Entry = tuple[str, str | None, int, int]
TOPIC = (0, -1)  # neutral, a complaint when negated
GOOD = (1, -1)
BAD = (-1, 1)
FIXED = (-1, -1)  # holds its own negation


def _e(pattern: str, theme: str | None, polarity: tuple[int, int]) -> _Entry:
    return (pattern, theme, polarity[0], polarity[1])


STILL_NOT = (
    "toujours$|encore$ pas$ recu$|recue$|recus$|recues$|versement|virement|paiement|verse$|"
    "versee$|paye$|payee$|envoye$|envoyee$|arive"
)

LEXICON: tuple[_Entry, ...] = (
    # réponse personnalisée
    _e("reponse type", REP, BAD),
    _e("mail type", REP, BAD),
    _e("reponse standard$", REP, BAD),
    _e("texte|courier|leter|mail|mesage|formule standard$", REP, BAD),  # « un texte standard »
    _e("toute$|toutes$ faite$|faites$", REP, BAD),
    _e("meme$|memes$ reponse", REP, BAD),
    _e("copi col", REP, BAD),
    _e("personalis|personelement", REP, GOOD),
    _e("etudie|etudier|examine|examiner cas$|dosier|situation|demande", REP, GOOD),
    _e("adapt", REP, GOOD),
    _e("inadapt", REP, BAD),
    _e("corespond", REP, GOOD),
    _e("cas$", REP, TOPIC),
    _e("sur$ mesure", REP, GOOD),
    _e("tenu$|tient$|tenir$|tiennent$|tenez$|tenait$|tenaient$ compte", REP, GOOD),
    _e("cote question", REP, BAD),
    _e("reponse|repondu|repond cote$", REP, BAD),  # « réponse à côté »
    _e("reponse|repondu|repond completement$|totalement$|tout$|carement$ cote$", REP, BAD),
    # « une réponse qui colle à ma situation », « les articles applicables à ma situation »
    _e("cole$|colait$|colent$|applicable|applicables$ situation|cas$|dosier|activite", REP, GOOD),
    _e("script|recite|recitait|reciter", REP, BAD),  # « lisait un script »
    _e("question", REP, TOPIC),
    _e("general", REP, BAD),
    _e("sans$ regard", REP, FIXED),
    _e("lu$", REP, GOOD),
    _e("reponse precis", REP, GOOD),
    _e("en$ detail$|details$", None, GOOD),  # « regardé mon dossier en détail »: no clarity
    # « pris en compte »: my situation (a personal answer), or a paper or a change recorded (the
    # handling: « mon changement d'adresse n'a jamais été pris en compte »)
    _e("prise$|pris$|prendre$ en$ compte", PEC, GOOD),
    _e(
        "prise$|pris$|prendre$|prenez$|prenent$|prend$ en$ compte$ "
        "situation|cas$|particul|besoin|contraint|handicap|age$",
        REP,
        GOOD,
    ),
    _e("cote plaque", REP, BAD),
    _e("conai dosier|situation|cas$|sujet|reglementation|regles$|droits$", REP, GOOD),
    _e(
        "conai bien$|parfaitement$ dosier|situation|cas$|sujet|reglementation|regles$|droits$",
        REP,
        GOOD,
    ),
    _e("conai pas$ dosier|situation|cas$|sujet|reglementation|regles$|droits$", REP, FIXED),
    _e("tenu$|tient$|tenir$|tiennent$|tenez$|tenait$|tenaient$ pas$ compte", REP, FIXED),
    _e("reponse complet", REP, GOOD),
    _e("reponse vague", REP, BAD),
    _e("sans$ raport", REP, FIXED),
    _e("regard dosier", REP, GOOD),
    _e("lisent$|lit$|lire$", REP, GOOD),
    _e("hors$ sujet$", REP, BAD),
    _e("toutes$ reponses$", REP, GOOD),
    _e("generique", REP, BAD),
    _e("reponse|mesage|mail|mails$|courier|couriel automati", REP, BAD),
    _e("standardis", REP, BAD),
    _e("impersonel", REP, BAD),
    _e("rien$ voir$", REP, BAD),
    _e("repond question", REP, GOOD),
    # round nine: « ne répond pas à ma question / à mon cas », « la même lettre à tout le monde »,
    # « on m'a recopié le texte de loi », « on me répond sur autre chose »
    _e(
        "repond|repondent|repondait pas$ question|questions$|cas$|demande|situation|besoin",
        REP,
        FIXED,
    ),
    _e(
        "ne$ repond|repondent|repondait pas$ question|questions$|cas$|demande|situation|besoin",
        REP,
        FIXED,
    ),
    _e("meme$|memes$ letre|courier|mail|mesage|texte|pave$|discours", REP, BAD),
    _e("recopi", REP, BAD),
    _e("repond|repondu|reponse autre$ chose$", REP, BAD),
    _e("repond toutes$|tous$ questions$|demandes$", REP, GOOD),
    _e("vrai$|vraie$|vraies$|vrais$ reponse", REP, GOOD),
    _e("repondu precis", REP, GOOD),
    # clarté
    _e("clair", CLA, GOOD),
    _e("clarte", CLA, GOOD),
    _e("explica", CLA, TOPIC),
    _e("expliqu", CLA, TOPIC),
    _e("incomprehensibl", CLA, BAD),
    _e("comprehensibl", CLA, GOOD),
    _e("jargon", CLA, BAD),
    _e("termes$|mots$|vocabulaire$ techniq|compliq|administrati|juridiq", CLA, BAD),
    _e("compliqu", CLA, BAD),
    _e("simplifi", CLA, TOPIC),
    _e("formulair", CLA, TOPIC),
    _e("courier", CLA, TOPIC),
    _e("ilisibl", CLA, BAD),
    _e("flou", CLA, BAD),
    _e("contradictoir", CLA, BAD),
    _e("inform", CLA, TOPIC),
    _e("detail", CLA, GOOD),
    _e("fournir$", CLA, TOPIC),
    _e("enfin compris$", CLA, GOOD),
    _e("enfin$|tout$ _je_compr_", CLA, GOOD),  # « j'ai enfin compris », « tout compris »
    # « je ne sais pas quoi faire », « on ne sait jamais comment procéder »
    _e(
        "sais$|sait$|savons$|savais$|savait$ pas$|jamais$|toujours$|plus$ quoi$|comment$ "
        "faire$|proceder$|remplir$|faut$",
        CLA,
        FIXED,
    ),
    _e("compris$ explica", CLA, TOPIC),
    _e("limpid", CLA, GOOD),
    _e("renseign", CLA, TOPIC),
    _e("_je_compr_", CLA, TOPIC),
    _e("info$|infos$", CLA, TOPIC),
    _e("pedago", CLA, GOOD),
    _e("adreser$", CLA, TOPIC),
    _e("usine$ gaz$", CLA, BAD),
    _e("case$ tete$", CLA, BAD),  # « casse-tête », not « cassé »
    _e("sigle|acronym|abreviation", CLA, BAD),
    _e("chose$ diferent", CLA, BAD),  # « chaque courrier dit quelque chose de différent »
    _e("s$ perd$|perdre$|perdait$", CLA, BAD),  # « on s'y perd »
    _e("chacun$ dit$", CLA, BAD),
    # « une information différente » à chaque fois: contradictory
    _e("information|info$|infos$|reponse|reponses$|version|explication diferent", CLA, BAD),
    _e("confus", CLA, BAD),
    _e("obscur", CLA, BAD),
    _e("ambigu", CLA, BAD),
    _e("lisibl", CLA, GOOD),
    _e("vulgaris", CLA, GOOD),
    _e("charabia", CLA, BAD),
    _e("embrouil", CLA, BAD),
    _e("demarche", CLA, TOPIC),
    _e("contredi", CLA, BAD),
    _e("incoheren|ilogiq", CLA, BAD),
    # « dit l'inverse », « tout et son contraire »
    _e("inverse$|contraire$|contraires$", CLA, BAD),
    _e("au$ contraire$", None, (0, 0)),
    _e("demarche|demarches$|etapes$ suivre$", CLA, TOPIC),
    _e("reglementation", None, (0, 0)),
    _e("reglement$|reglements$", None, (0, 0)),  # the rules, not « réglé »
    _e("reformul", CLA, GOOD),
    # the agent restating my request, or the user made to restate it: understanding
    _e("reformul demande|question|besoin", COM, GOOD),
    _e("tout$ reformuler$|reformule$", COM, BAD),
    _e("atendait$|atend$|atendent$|atendez$|atendaient$ moi$|nous$", None, (0, 0)),  # of me
    _e("parler$|parle$|parlait$ dans$ vide$", COM, BAD),  # « parler dans le vide »
    # round nine: the user lost or enlightened: « j'ai rien capté », « un labyrinthe », « on ne
    # trouve rien », « site plus intuitif », « 3 montants différents », « ne dit pas pourquoi »
    _e("capte$|pige$", CLA, TOPIC),
    _e("labyrinth|dedale", CLA, BAD),
    _e("suis$|sommes$|sens$|sent$ perdu$|perdue$|perdus$|perdues$", CLA, BAD),  # the user lost
    _e(
        "motif|justification$|justifications$", CLA, TOPIC
    ),  # « rejeté sans motif »: a refusal not explained
    _e("paperas", CLA, BAD),  # « trop de paperasse »
    _e("serveur vocal labyrinth|dedale", CON, BAD),
    _e("trouve$|trouver$ rien$", CLA, FIXED),
    _e("intuiti", CLA, GOOD),
    _e("montant|montants$|chifre|chifres$|calcul diferent", CLA, BAD),
    _e("dit$|dire$|disent$|explique$|expliquer$ pourquoi$", CLA, TOPIC),
    _e("francais$ courant$", None, (0, 0)),  # plain French, not « au courant »
    _e("informatiq", AUT, TOPIC),  # « informatique » is no information
    # facilité de contact
    _e("joindr", CON, TOPIC),
    _e("joignabl", CON, GOOD),
    _e("injoignabl", CON, BAD),
    _e("telephon", CON, TOPIC),
    _e("apel", CON, TOPIC),
    _e("standard$", CON, TOPIC),
    _e("decroch", CON, TOPIC),
    _e("repondeur", CON, BAD),
    _e("serveur vocal", CON, BAD),
    _e("musique", CON, BAD),  # « on tombe sur une musique d'attente »
    _e("plateform", CON, TOPIC),
    _e("surtax", CON, BAD),
    _e("ocup", CON, BAD),
    _e("satur", CON, BAD),
    _e("ligne$", CON, TOPIC),
    _e("en$ ligne$", None, (0, 0)),
    _e("chat$", CON, TOPIC),
    _e("chatbot", CON, TOPIC),
    _e("joint$|joignons$|joignait$", CON, TOPIC),  # « on les joint facilement »
    _e("leur$|vous$ ecrire$|parler$|telephoner$", CON, TOPIC),  # « on ne peut pas leur écrire »
    _e("acesibl telephon|tel$|mail|mails$|internet$|courier", CON, GOOD),
    _e("rendez vous$ disponibl|libre", CON, TOPIC),  # « plus aucun rendez-vous disponible »
    _e("mesagerie", CON, TOPIC),
    _e("adrese mail", CON, TOPIC),
    _e("contacter$|contact$", CON, TOPIC),
    _e("humain", CON, TOPIC),
    _e("humaine$|humaines$", COM, GOOD),
    _e("mails$|courriels$", CON, TOPIC),
    _e("parler$ quelqu", CON, TOPIC),
    _e("robot", CON, BAD),
    _e("ligne$ coupe|coupee", CON, BAD),
    _e("envoyer$ mesage|mail|courier", CON, TOPIC),
    _e("numero", CON, TOPIC),
    _e("acueil telephon", CON, TOPIC),
    _e("bon$|bone$ persone$|interlocut|numero$", CON, TOPIC),
    _e("coupe$|coupee$|coupent$|coupait$", CON, BAD),
    _e("met$|mis$|mise$|metent$ en$ atente", CON, BAD),
    _e("rendez vous$ facil", CON, GOOD),
    _e("transfer", CON, TOPIC),
    _e("rendez vous$ obtenu|pris$", CON, TOPIC),
    _e("avoir$ conseil|interlocut", CON, TOPIC),
    _e("visio", CON, TOPIC),
    _e("proposer$|propose$|proposent$|proposez$ rendez", CON, TOPIC),
    # « les créneaux sont toujours complets »
    _e("creneau|creneaux$|agenda|planing complet$|complets$|plein$|pleins$", CON, BAD),
    _e("rendez vous$ complet$|complets$", CON, BAD),
    _e("ecrire$ mail$|mails$|courier", CON, TOPIC),
    _e("suite$ apel", None, (0, 0)),
    _e("racroch", CON, BAD),
    _e("apel|rapel|telephon _fois_", CON, BAD),  # « appelé cinq fois »
    _e("sone$", CON, TOPIC),
    _e("obtenir|avoir$|prendre$|prise$ rendez", CON, TOPIC),
    _e("creneau", CON, TOPIC),
    _e("mesage$|mesages$ enregistr|automati|prereg", CON, BAD),
    _e("boite$ vocal", CON, BAD),
    _e("bout$ fil$", CON, TOPIC),
    _e("rapel automatique", CON, TOPIC),
    _e("avoir$ quelqu|persone$", CON, TOPIC),
    _e("avoir$ telephon", CON, TOPIC),  # « impossible de les avoir au téléphone »
    _e("ai$ quelqu", CON, TOPIC),  # « j'ai eu quelqu'un » (« eu » is a stopword)
    _e("ne$ repond", CON, FIXED),
    # round nine: opening hours and ways in are how easy the service is to reach (the written
    # rules: « opening hours », « appointments availability »)
    _e("horair", CON, TOPIC),
    _e("horair adapt", CON, GOOD),  # « des horaires adaptés »: the hours, not my case
    _e("horair pas$|plus$|peu$ adapt", CON, FIXED),
    _e("ouverture", CON, TOPIC),
    _e("heures$ ouverture", CON, TOPIC),
    _e("ouvrir$|ouvert$|ouverte$|ouverts$|ouvertes$|ouvre$|ouvrent$", CON, TOPIC),
    _e("guichet|guichets$|caise|caises$ ouvert|ouverts$", AUT, TOPIC),  # staffing, not hours
    # an account or a file opened or closed is no opening hour
    _e("ouvert$|ouvrir$|ouvre$ compte|dosier|espace|droits$|mail|courier|letre", None, (0, 0)),
    _e("compte|dosier ferme$|fermee$|fermes$", PEC, BAD),
    _e("ouvrir$ plus$ guichet|guichets$", None, (0, 0)),
    _e("ferme$|fermee$|fermes$|fermees$|fermeture", CON, BAD),
    _e("samedi", CON, TOPIC),
    _e("midi$ deux$", CON, TOPIC),
    _e("permanenc", CON, TOPIC),
    _e("acueil$ physique|_sans_rdv_", CON, TOPIC),
    # « pas d'accueil le mercredi »: the days a desk is open
    _e(
        "acueil$ lundi$|mardi$|mercredi$|jeudi$|vendredi$|samedi$|dimanche$|matin$|soir$|apres$",
        CON,
        TOPIC,
    ),
    _e("_sans_rdv_", None, (0, 0)),  # « je suis passé sans rendez-vous »: a fact
    _e("acueil$ ferme$|fermee$", CON, BAD),
    _e("menu$|menus$ vocal|vocaux", CON, BAD),
    _e("decalage$ horair", CON, BAD),  # overseas: « avec le décalage horaire »
    # everything online or by appointment only: « tout se fait sur internet », « pas d'ordinateur »
    _e("tout$ rendez vous$", CON, BAD),
    _e("tout$ internet$|dematerialis|numerique", CON, BAD),
    _e("tout$ fait$|faire$|pase$|faut$ internet$|dematerialis|numerique", CON, BAD),
    _e("tout$ fait$|faire$|pase$|faut$ en$ ligne$", CON, BAD),
    _e("tout$ en$ ligne$", CON, BAD),
    _e("ordinateur", CON, TOPIC),
    _e("zone$ blanche$", CON, BAD),
    _e("internet$", CON, TOPIC),
    _e("site$|sites$ internet$", AUT, (0, 0)),  # the website, as « site »
    _e("seul$|unique$ numero", CON, GOOD),
    # one person following the file is the handling (« un interlocuteur unique pour mon dossier »)
    _e("seul$|unique$ interlocut", PEC, GOOD),
    _e("interlocut seul$|unique$", PEC, GOOD),
    _e("rendez vous$ dispo$|dispos$", CON, GOOD),  # « rdv dispo dès la semaine suivante »
    _e("service$|systeme$ rapel", CON, TOPIC),  # « le service de rappel est top »
    # a file or social security number is no phone number
    _e(
        "numero$|numeros$ dosier|alocataire|securite|secu$|fiscal|client|demande|ticket",
        None,
        (0, 0),
    ),
    _e("numero$|numeros$ apel|pasage", AUT, TOPIC),  # « les numéros d'appel » on a screen
    _e("ecran$|ecrans$", AUT, TOPIC),
    _e("page$ acueil", None, (0, 0)),  # a website's home page, not a welcome
    _e("dit$ rapeler$ plus$ tard$", CON, BAD),  # the answering machine's « rappelez plus tard »
    _e("en$ boucle$", None, BAD),  # « musique en boucle »
    # compréhension
    _e("compr", COM, TOPIC),
    _e("comprehensi", COM, GOOD),
    _e("incompri", COM, BAD),
    _e("ecout", COM, GOOD),
    _e("croit$|croient$|croire$", COM, TOPIC),  # « ils ne me croient pas »
    # « je ne sais plus qui croire »: contradictory answers
    _e("sais$|sait$|savons$|savait$ plus$|pas$ qui$ croire$", CLA, FIXED),
    _e("sais$|sait$|savons$|savait$ plus$|pas$ croire$", CLA, FIXED),
    _e("parler$|parle$|parlait$ mur$", COM, BAD),  # « parler à un mur »
    # « n'a rien voulu entendre », « ne veut pas comprendre »
    _e(
        "voulu$|veut$|veulent$|voulait$|voulaient$ entendre$|ecouter$|comprendre$|savoir$",
        COM,
        TOPIC,
    ),
    _e("lais expliqu", COM, GOOD),  # « pas laissé m'expliquer »: the agent did not listen
    _e("entendu", COM, GOOD),
    _e("juge", COM, BAD),
    _e("idiot", COM, BAD),
    _e("coup parole", COM, BAD),
    _e("lais parl", COM, GOOD),
    _e("lais finir", COM, GOOD),
    _e("empathi", COM, GOOD),
    _e("rasur", COM, GOOD),
    _e("pris$|prend$|prenent$|prendre$ serieux", COM, GOOD),
    _e("entendu$ parler$", None, (0, 0)),
    _e("cerne$|cernee$|cerner$|cernait$", COM, GOOD),
    _e("infantilis", COM, BAD),
    _e(
        "pris$|prend$|prenent$ pour$ idiot|imbecil|debil|menteu|voleu|fraudeu|profiteu|numero|pion"
        "|chien",
        COM,
        BAD,
    ),
    # prise en charge
    _e("prise$|pris$ en$ charg", PEC, GOOD),
    _e("pris$ main$", PEC, GOOD),
    _e("en$ main$", PEC, GOOD),
    _e("trait", PEC, TOPIC),
    # processing (« 3 mois pour traiter », « traitement hyper long ») is a wait, not the handling
    # judged (« traitée en 48h »): weak
    _e("traitement$|traitements$", DEL, TOPIC),
    _e("traiter$", PEC, TOPIC),
    _e("regl", PEC, GOOD),
    _e("resolu|resoudr", PEC, GOOD),
    _e("suivi$|suit$|suivre$|suive$|suivie$|suivis$|suivies$", PEC, GOOD),
    _e("s$ ocup", PEC, GOOD),
    _e("s$ en$ ocup|charg", PEC, GOOD),  # « personne ne s'en occupe »
    _e("rejet", PEC, BAD),  # « ma demande a été rejetée »
    _e("decision", PEC, TOPIC),  # « toujours pas de décision »
    _e("prendre$ dosier|demande|dossiers$", PEC, GOOD),  # « refusé de prendre mon dossier »
    _e("persone$ s$ ocup|en$", PEC, FIXED),  # « personne s'occupe de rien » (SMS, no « ne »)
    _e("renvoy", PEC, BAD),
    _e("renvoyer$", PEC, TOPIC),  # « je dois renvoyer mon attestation »: a task, not a runaround
    _e("renvoie$|renvoient$", PEC, BAD),  # « on me renvoie vers la CAF »
    # having to say it all again: « répéter 10 fois la même chose », « tout redire »
    _e("repet|redire|redit _fois_", PEC, BAD),
    _e("tout$ redire$|repeter$", PEC, BAD),
    _e("repeter$|redire$ meme$ chose$", PEC, BAD),
    _e("rien$ pu$|pouvait$|peut$|pouvaient$ faire$", PEC, FIXED),  # « il n'a rien pu faire »
    _e("enregistre$|enregistree$|enregistres$|enregistrees$", PEC, TOPIC),  # « jamais enregistré »
    _e("mis$|mise$|metre$ dosier|demande cote$", PEC, BAD),  # « mis mon dossier de côté »
    _e("trace$|traces$", PEC, TOPIC),  # « aucune trace de mon appel »
    _e("trace$|traces$ apel|apels$|mail|mails$|courier|dosier|demande|pasage", PEC, TOPIC),
    # « malgré mes relances / 3 appels »: the request was not followed up
    _e("malgre$ apel|apels$|relanc|mails$|couriers$|demandes$|visites$", PEC, BAD),
    _e("etre$ rapele$|rapelee$|rapeles$", CON, TOPIC),  # « pouvoir être rappelé »: a way in
    _e("lieu$", PEC, TOPIC),  # « le rendez-vous n'a jamais eu lieu »
    _e("service en$ service", PEC, BAD),
    # sent from one desk to another: « de bureau en bureau », « d'un service à l'autre »
    _e(
        "service|bureau|guichet|agence|persone|conseiler|interlocuteur|poste$|etage en$ "
        "service|bureau|guichet|agence|persone|conseiler|interlocuteur|poste$|etage",
        PEC,
        BAD,
    ),
    _e(
        "service$|bureau$|guichet$|agence$|interlocuteur$|conseiler$|poste$|etage$ autre$", PEC, BAD
    ),
    _e(
        "entre$ trop$|plusieurs$|beaucoup$|tant$ mains$|persones$|services$|interlocuteurs$",
        PEC,
        BAD,
    ),
    _e("tourne$|tourner$|tournent$ en$ rond$", PEC, BAD),
    _e("renvoi bale", PEC, BAD),
    _e("renvoi|renvoy|rejet|rejete responsabilit", PEC, BAD),  # « se renvoient la responsabilité »
    _e("responsabilit", PEC, TOPIC),  # « personne ne prend la responsabilité »
    _e(
        "done$|doner$|donent$|donera$|donee$ suite$|nouvel|nouveles$", PEC, TOPIC
    ),  # « personne n'a donné suite »
    _e("letre$ morte$", PEC, BAD),
    _e("trape$", PEC, BAD),  # « passé à la trappe »
    _e(
        "trompe$|trompes$|trompee$|trompees$|tromper$|trompent$", PEC, BAD
    ),  # « trompés de dossier »
    _e("dort$|dorment$|dormait$", PEC, BAD),  # « mon dossier dort dans un tiroir »
    _e("tour$ services$|bureaux$|guichets$|agences$", PEC, BAD),  # « fait le tour des services »
    _e("verifi", PEC, TOPIC),
    _e("silence$ radio$|total$|complet$", PEC, BAD),
    _e("point$ mort$", PEC, BAD),
    _e("en$ soufrance$", PEC, BAD),
    _e("stand$ by$", PEC, BAD),
    _e("standby", PEC, BAD),
    _e("fait$|faire$|font$ trainer$", PEC, BAD),
    _e("mis$|mise$|metre$|mises$ cote$", PEC, BAD),  # « mis de côté »
    _e("laise$|laisee$|laises$ en$ atente|plan$|suspens$", PEC, BAD),
    # a request and what became of it: « dossier négligé », « demande gelée » (« a été »: stopwords)
    _e(
        "dosier|demande|reclamation|requete neglig|ignor|bacl|gele$|gelee$|suspendu|melang",
        PEC,
        BAD,
    ),
    _e("rectifi|regularise$|regularisee$|regularises$", PEC, GOOD),  # not « régularisation »
    _e("en$ priorite$|prioritair", PEC, GOOD),
    _e("bourique", PEC, BAD),  # « tourner en bourrique »
    _e("comme$ convenu$", PEC, GOOD),
    _e("relanc", PEC, BAD),
    _e("sans$ suite$", PEC, FIXED),
    _e("perdu", PEC, BAD),
    # what the user lost is no lost file: « j'ai perdu ma carte vitale », « carte vitale perdue »
    _e(
        "perdu$|perdue$|perdus$ carte|emploi|travail|portefeuil|sac$|cle$|cles$|permis"
        "|pasepor|conjoint|mari$|femme$|epoux|epouse",
        None,
        (0, 0),
    ),
    _e("vitale$|identite$|carte$|papiers$|pasepor|permis$ perdu|perdue$|perdus$", None, (0, 0)),
    _e("rendez vous$ suivi$", None, (0, 0)),  # a follow-up appointment, no judgement
    _e("rendez vous$ _duree_", None, (0, 0)),  # « mon rendez-vous de 14h »: a time, no wait
    # « 3 semaines d'attente pour un rendez-vous »: named in passing, beside a wait it makes it
    # contact too (see _waits_for_contact)
    _e("pour$|avant$ rendez vous$", CON, TOPIC),
    _e("pour$|avant$ rendez vous$ _duree_", None, (0, 0)),  # « pour mon rendez-vous de 14h »
    _e("tout$ reprendre$|refaire$|reexpliquer$", PEC, BAD),  # « il faut tout reprendre »
    _e("cause$ ereur|ereurs$", PEC, FIXED),  # « à cause d'une erreur »
    _e("cause$ leur$|votre$ ereur|ereurs$", PEC, FIXED),
    _e("avanc", PEC, GOOD),
    _e("en$ avance$", DEL, GOOD),
    _e("boug", PEC, TOPIC),
    _e("aid", PEC, GOOD),
    _e("acompagn", PEC, GOOD),
    _e("venu$|venue$|venus$|venues$|pour$ acompagner$", None, (0, 0)),  # came with someone
    _e("finalis|concretis", PEC, GOOD),
    _e("interlocuteur", PEC, TOPIC),
    _e("transfer _fois_", PEC, BAD),  # « transféré quatre fois »: passed around
    # « personne ne m'a rappelé comme prévu »: a promised call not made is the handling
    _e("apel|rapel|contact comme$ prevu$|promis|convenu", PEC, GOOD),
    _e("rapel", PEC, TOPIC),
    _e("sms$|mail|mesage|courier|leter|notification rapel", None, (0, 0)),  # a reminder
    _e("envoyer$ sms$|mail|mesage|courier rapel", None, (0, 0)),
    # a file handled, named with its speed (« pension calculée vite et bien », « demande
    # instruite en 48h »): the handling beside the delay
    _e("calcule$|calculee$|calcules$|calculees$|validee$|valide$|instruit$|instruite$", PEC, TOPIC),
    _e("promi", PEC, FIXED),  # « le mail promis », « pas reçu le mail promis »
    _e("corig", PEC, GOOD),
    _e("bloqu", PEC, BAD),
    _e("recommenc", PEC, BAD),
    _e("revenir", PEC, BAD),
    _e("egar", PEC, BAD),
    _e(
        "meme$|memes$ papier|document|piece|probleme|justif|atestation|releve|certificat|formulair"
        "|dosier|demarche|rib$|facture|fiche|copie|info",
        PEC,
        BAD,
    ),
    # a request not followed up: « aucune nouvelle », « toujours rien », « pas de réponse à mes
    # courriers », « toujours pas de retour »
    _e("aucune$|aucunes$|pas$|sans$|jamais$|point$|plus$ nouvel|nouveles$", PEC, FIXED),
    _e(
        "toujours$|encore$ pas$|sans$|aucune$|aucun$|rien$ nouvel|nouveles$|retour|suite$|reponse",
        PEC,
        FIXED,
    ),
    _e("toujours$|encore$ rien$", PEC, FIXED),
    # « toujours pas reçu ma carte », « toujours pas de versement »: a delay; after a duration
    # also the handling (« toujours pas reçu après 4 mois », the writers' rule)
    _e(STILL_NOT, DEL, FIXED),
    # left on one's own: « lâché dans la nature », « livrée à moi-même »
    _e("lache$|lachee$|laches$|lachees$ dans$ nature$", PEC, FIXED),
    _e("livre$|livree$|livres$|livrees$ moi$|nous$|lui$|elle$|eux$|soi$ meme$", PEC, FIXED),
    _e("demel|anticip", PEC, GOOD),  # « a tout démêlé », « ont anticipé le document »
    _e(
        "revenu$|revenue$|revenus$|revenir$ chercher$", PEC, GOOD
    ),  # « personne n'est revenu me chercher »
    _e(
        "pas$|aucune$|sans$|jamais$ reponse|reponses$|retour "
        "courier|dosier|reclamation|demande|relance|envoi|leter|depot|requete|recour|mail|mails$|"
        "couriel|mesage|formulaire",
        PEC,
        FIXED,
    ),
    # a request made again and again: « on m'a réclamé trois fois », « envoyé 3 fois »
    _e(
        "demand|redemand|reclam|envoy|envoi|renvoy|fourni|depos|transmi|redon|refourni|revien|revenu"
        "|revenir|repase|deplac _fois_",
        PEC,
        BAD,
    ),
    _e("_fois_ demand|redemand|reclam|envoi|envoy|renvoi|fourni|depos|transmet|redon", PEC, BAD),
    # where a request stands: « personne n'a pu me dire où en est mon dossier » (où, est: stopwords)
    _e("savoir$|dire$|sait$|sais$|indiquer$|informer$ en$ dosier|demande|situation", PEC, TOPIC),
    _e("coeur$", PEC, GOOD),  # « pris mon dossier à cœur »
    _e("desorganis|pagail|bazar|cafouil|foutoir", PEC, BAD),
    _e("en$ suspens$|plan$", PEC, BAD),
    _e("oubliete|tiroir", PEC, BAD),
    _e("tenu$|tenue$|tenus$ informe", PEC, GOOD),
    _e("tenu$|tenue$|tenus$|tenir$|tient$|tiene$|tienent$ courant$", PEC, GOOD),  # au courant
    _e("solution", PEC, GOOD),
    _e("previen|preven", PEC, TOPIC),
    _e("clotur", PEC, TOPIC),
    _e("acuse reception", PEC, TOPIC),
    _e("reexpliqu", PEC, BAD),
    _e("interlocuteur diferent", PEC, BAD),
    _e("leur$ service$", PEC, TOPIC),
    _e("oubli", PEC, BAD),
    _e("sans$ ereur", PEC, GOOD),
    _e("orient", PEC, GOOD),
    _e("mal$ orient", PEC, BAD),
    _e("incomplet", PEC, BAD),
    _e("deja$ fourni|envoy|done", PEC, BAD),
    _e("reste$|restee$|restes$ sans$", PEC, FIXED),
    _e("boucl", PEC, GOOD),
    _e("fait$ necesaire$", PEC, GOOD),
    _e("comme$ promi", PEC, GOOD),
    _e("persones$|interlocuteurs$|conseilers$ diferent", PEC, BAD),
    _e("annul", PEC, BAD),
    _e("ereur$|ereurs$", PEC, BAD),
    _e("ereur corig", PEC, GOOD),
    # an error seen, admitted or put right is praise: « ont vu l'erreur », « corrigé leur erreur »
    _e(
        "vu$|repere|trouve$|detecte|remarque$|reconu|admis|identifie|corig|rectifi ereur", PEC, GOOD
    ),
    _e("corig|rectifi|repare leur$|cette$ ereur", PEC, GOOD),
    _e("reclamation", PEC, TOPIC),
    _e("en$ cours$", PEC, TOPIC),
    _e("dit$ rapel", PEC, BAD),  # « on m'a dit de rappeler »
    _e("transmis$|envoye$|envoyee$|oriente$|orientee$ mauvais", PEC, BAD),
    _e("refaire", PEC, BAD),
    _e("expliquer$ _fois_", PEC, BAD),
    _e("perdu$ droits$", None, BAD),
    _e("informe$|informee$|informes$ avancement", PEC, TOPIC),
    _e("pris$ soin", PEC, GOOD),
    _e("debloq", PEC, GOOD),
    _e("abouti", PEC, GOOD),
    _e("balad|trimbal|balot", PEC, BAD),
    _e("ping pong$", PEC, BAD),
    _e("gere$|geree$|gerer$|gere$", PEC, GOOD),
    _e("guid", PEC, GOOD),
    _e("soutien|soutenu|epaul|depan", PEC, GOOD),
    _e("tout$ repris$|regle$", PEC, GOOD),
    _e("repris$ dosier|demande", PEC, GOOD),
    _e("repris$|reprise$ tout$", PEC, GOOD),  # « elle a repris tout mon dossier »
    _e("s$ soucie|soucier|soucient|souciait", PEC, GOOD),  # « personne ne s'est soucié »
    _e("fait$ maximum|posible$", PEC, GOOD),
    _e("abandon", PEC, BAD),
    _e("ai$ abandone$", None, BAD),  # the user gave up: no handling named
    _e("recontact", PEC, TOPIC),
    _e("valide$|validee$|valides$|validees$|acepte$|aceptee$|aceptes$|aceptees$", PEC, GOOD),
    _e("mis$|mise$|metre$ en$ relation$", PEC, GOOD),
    _e("fait$|faire$ lien$|point$", PEC, GOOD),
    _e("en$ ordre$", PEC, GOOD),
    _e("laise$|laisee$|laises$|laisees$ seul$|seule$|seuls$|seules$", PEC, BAD),
    _e("mains$ vide$|vides$", PEC, BAD),
    _e("bredouil", PEC, BAD),
    _e("repartir$|reparti$|repartie$|repartis$ sans$", PEC, FIXED),  # « laissé repartir sans rien »
    _e("courant$", PEC, TOPIC),  # « personne n'est au courant de mon dossier »
    _e("transmis$|transmise$", PEC, TOPIC),
    _e("laise$|laisee$|laises$ tomber", PEC, BAD),
    _e("laise$|laisee$|laises$|laisees$ cote$|plan$|trainer$|suspens$|poireauter$", PEC, BAD),
    _e("livre$|livree$|livres$ moi$|nous$|lui$|elle$", PEC, BAD),
    _e("redemand", PEC, BAD),
    _e("debrouil", PEC, BAD),
    _e("retour$|retours$", PEC, TOPIC),  # « aucun retour », « pas de retour »
    _e("dirig", PEC, GOOD),
    _e("redirig", PEC, TOPIC),
    _e("interven", PEC, GOOD),
    _e("s$ charg", PEC, GOOD),  # « s'est chargée de tout »
    _e("rien$ n$ fait$", PEC, FIXED),
    _e("rien$ fait$", PEC, FIXED),
    # délais
    _e("rapid", DEL, GOOD),
    _e("vite$", DEL, GOOD),
    _e("lent", DEL, BAD),
    _e("long", DEL, BAD),
    _e("longtemps$", DEL, BAD),  # a bare duration (see DURATIONS)
    _e("atent", DEL, (0, 1)),
    _e("atend", DEL, BAD),
    _e("delai", DEL, TOPIC),
    _e("delai traitement", DEL, TOPIC),
    _e("delai|delais$|atente|retard|queue$ enorm|interminabl|inadmisibl|excesi", DEL, BAD),
    _e("delai|delais$ traitement$ enorm|long|interminabl|excesi", DEL, BAD),
    _e("express$", DEL, GOOD),
    _e("temps$ atent", DEL, (0, 1)),
    _e("poireaut", DEL, BAD),
    _e("traine$|trainent$", DEL, BAD),
    _e("interminabl", DEL, BAD),
    _e("tout$ suite$", DEL, GOOD),
    _e("_duree_", DEL, (-1, 0)),  # « pas de réponse depuis 3 semaines » is no praise
    _e("en$ _duree_", DEL, GOOD),
    _e("heures$|semaines$|mois$|jours$", DEL, FIXED),
    # « depuis » names a wait only beside a complaint: « bloqué depuis janvier », not « retraité
    # depuis mars »
    _e("depuis", DEL, (0, 0)),
    # « depuis » before a place, a device or a channel is « from », no time: « depuis l'appli »,
    # « depuis la Réunion », « depuis un portable », « depuis mon espace personnel »
    _e(
        "depuis$ espace|apli|aplication|site$|portable|telephon|mobile|smartphone|ordinateur|"
        "tablette|internet$|etranger|chez$|reunion$|guadeloupe$|martinique$|guyane$|mayotte$|"
        "metropole$|outre$|province$|campagne$|domicile$|maison$|compte$|ligne$|france$",
        None,
        (0, 0),
    ),
    _e("_s_attendre_ mieux$|plus$", None, BAD),  # « on s'attend à mieux »
    _e("dificult", None, (0, 1)),  # « sans difficulté »: praise
    _e("perdu$ rendez vous$|place$|tour$", None, BAD),  # « j'ai perdu mon rendez-vous »
    _e("malgre$ retard$", None, (0, 0)),  # « malgré mon retard »: the user was late
    _e("declar heures$", None, (0, 0)),  # « la déclaration des heures »: hours worked
    # how the agent spoke is no wait: « parlait lentement et clairement », « parlait trop vite »
    _e("parl lent|lentement$|doucement$|calmement$|posement$", None, GOOD),
    _e("parl vite$|rapid|rapidement$", None, BAD),
    _e("parl trop$ vite$|rapid|rapidement$", None, BAD),
    _e("sous$ _duree_", None, (0, 0)),
    _e("lendemain", DEL, GOOD),
    _e("monde$", DEL, TOPIC),
    _e("tout$ monde$", None, (0, 0)),
    _e("temps$ fou$", DEL, BAD),
    _e("temps$ infini$|enorme|considerable", DEL, BAD),
    _e("beaucoup$|tant$|enormement$|autant$ atent", DEL, BAD),
    _e("moins$ _duree_", DEL, GOOD),  # « en moins de 24 heures »
    _e("trop$ percu|paye|verse", None, (0, 0)),  # an overpayment, not « trop »
    _e("pris$ temps$ fou$", DEL, BAD),
    _e("temps$ traitement$", DEL, TOPIC),
    _e("viremen|paiemen|versemen", DEL, TOPIC),
    _e("verse$|versee$|verses$|versees$|vire$|viree$|vires$", DEL, TOPIC),  # « pas encore versée »
    _e("toujours$|encore$ en$ atente", DEL, FIXED),  # « toujours en attente »
    _e("rendez vous$ avance$|avancee$", DEL, GOOD),  # « le rendez-vous a été avancé »
    _e("fin$ mois$|semaine$|annee$|journee$", None, (0, 0)),  # a date, not a wait
    _e("rembours", DEL, (0, 0)),  # weak, never judged itself: a theme only alone
    _e("retard", DEL, BAD),
    _e("dans$ journee$|heure$", DEL, GOOD),
    _e("dans$ demi$ heure$|journee$", DEL, GOOD),
    _e("dans$ temps$|delai|delais$", DEL, GOOD),  # « dans les temps », « dans les délais »
    _e("hors$ delai|delais$", DEL, BAD),
    _e("reactiv|reactif", DEL, GOOD),
    _e("perte$|perdu$ temps$", DEL, BAD),
    _e("perdu$|perdre$|perd$ matinee$|journee$|apres$", DEL, BAD),
    _e("ponctu", DEL, GOOD),
    _e("jour$ meme$", DEL, GOOD),
    _e("temps$ perdu$", DEL, BAD),
    _e("perd$|perdre$|perdons$ temps$", DEL, BAD),
    _e("ralonge", DEL, BAD),  # « délais à rallonge »
    _e("oblige$|obligent$|obligee$|obliges$", None, BAD),  # « on nous oblige à »
    _e("plein$|pleine$ humour|energie|vie$|bone$|atention", None, GOOD),  # not « full »
    _e("recu$|recue$|recus$|recues$ heure$", DEL, GOOD),  # « reçue à l'heure »
    _e("paye$|payee$|payes$ temps$", DEL, GOOD),
    # « toucher mes indemnités à temps », « versée à temps », « arrivé à temps »
    _e("toucher$|touche$|touchee$|verse$|versee$|vire$|viree$|arive$|arivee$ temps$", DEL, GOOD),
    _e(
        "toucher$|touche$|touchee$ indemnit|alocation|pension|retraite|aide$|aides$ temps$",
        DEL,
        GOOD,
    ),
    _e("ca$|file$|queue$|atente$ avanc", DEL, TOPIC),  # the queue moves, not the file
    _e("imediat", DEL, GOOD),
    _e("aussitot", DEL, GOOD),
    _e("persone$ devant$", DEL, GOOD),  # « personne devant moi »
    _e("queue$|file$ debord", DEL, BAD),  # « la queue déborde »
    _e("queue$", DEL, (0, 1)),  # « pas de queue ce matin » is praise
    _e("semaine$ meme$", DEL, GOOD),  # « un rendez-vous la semaine même »
    _e("_duree_ seulement$", DEL, GOOD),  # « au bout de deux minutes seulement »
    _e("annonce$|annoncee$|prevu$|prevue$ _duree_", None, (0, 0)),
    _e("tout$ long$", None, (0, 0)),  # « tout au long de »
    _e("date$ limite$", DEL, TOPIC),
    _e("apres$ date$ limite$", DEL, BAD),
    _e("depuis$ debut$", None, (0, 0)),
    _e("malgre$ monde$", None, (0, 0)),  # « accueil souriant malgré le monde »
    _e("bonde$|bondee$|blinde$|blindee$", None, BAD),  # « toujours bondé »
    _e("atente$|queue$|monde$ acueil$", DEL, TOPIC),  # « trop de monde à l'accueil »: a place
    _e("pendant$ atend|atente", None, (0, 0)),  # « pendant qu'on attend »: when, not how long
    _e("attends$|attend$ suite$", None, (0, 0)),  # « j'attends la suite »: no wait judged
    _e("plus$ besoin$ atendr|atente|poireaut", DEL, GOOD),
    _e("peur$ galer", None, (0, 0)),  # « j'avais peur de galérer »
    _e("aide$|aides$ logement|social|financier", None, (0, 0)),  # a benefit, not help
    _e("demander$|demande$|chercher$ aide$", None, (0, 0)),  # « venir demander de l'aide »
    # courtoisie
    _e("acueil", COU, TOPIC),
    _e("acueilan", COU, GOOD),
    _e("aimabl", COU, GOOD),
    _e("amabilit", COU, GOOD),
    _e("gentil", COU, GOOD),
    _e("souri", COU, GOOD),
    _e("petits$ soins$", COU, GOOD),  # « aux petits soins »
    _e("rembar|rabrou", COU, BAD),  # « on se fait rembarrer »
    _e("envoye$|envoyee$|envoyer$ bouler$|paitre$|promener$|balader$", COU, BAD),
    _e("tourne$|tourner$|tournait$ dos$", COU, BAD),  # « m'a tourné le dos »
    # « personnel agréable »: pleasant people are a courteous welcome
    _e(
        "personel|equipe|agent$|agents$|agente$|conseiler|conseilere|dame$|guichetier agreabl",
        COU,
        GOOD,
    ),
    _e("poli$|polie$|polis$", COU, GOOD),
    _e("mal$ poli", COU, BAD),
    _e("malpoli|impoli", COU, BAD),
    _e("politese", COU, GOOD),
    _e("courtois", COU, GOOD),
    _e("respectu", COU, GOOD),
    _e("chaleureu", COU, GOOD),
    _e("sympa", COU, GOOD),
    _e("desagreabl", COU, BAD),
    _e("hautain", COU, BAD),
    _e("mepris", COU, BAD),
    _e("humili|degradan|rabaisan|impatien", COU, BAD),
    _e("agresi", COU, BAD),
    _e("froid", COU, BAD),
    _e("sec$|sechement$", COU, BAD),
    _e("bonjour", COU, TOPIC),
    _e("salue$|salues$|saluee$|saluer$|saluent$", COU, TOPIC),  # « personne ne nous a salués »
    _e("tutoy", COU, BAD),
    _e("crie", COU, BAD),
    _e("engueul|gueul|hurl", COU, BAD),
    _e("foutage|fout|foutent|foutait gueule", None, BAD),  # « foutage de gueule »: no rudeness
    _e("leve yeux", COU, BAD),
    _e("mal$ recu", COU, BAD),
    _e("serviabl", COU, GOOD),
    _e("bienveilan", COU, GOOD),
    _e("adorabl", COU, GOOD),
    _e("charmant", COU, GOOD),
    _e("patien", COU, GOOD),
    # « on m'a demandé de patienter »: told to wait, no patience judged
    _e("patienter$|patientez$|patientais$|patientait$|patientions$", None, (0, 0)),
    _e("egard", COU, GOOD),  # « reçue avec beaucoup d'égards »
    _e("bien$ recu$|recue$|recus$|recues$", COU, GOOD),
    _e("derang", COU, BAD),
    _e("nez$", COU, BAD),
    _e("presse$|pressee$|presses$", COU, BAD),
    _e("expeditif|expeditive", COU, BAD),
    _e("insult", COU, BAD),
    _e("arogan", COU, BAD),
    _e("betail", COU, BAD),
    _e("traite$|traites$|traitee$|traitees$ comme$", COU, BAD),
    # « parlé comme à un enfant », « comme si j'étais stupide », « pris de haut »
    _e("parle$|parlait$|parlent$|parler$|parlee$|repondu$|regarde$|regardee$ comme$", COU, BAD),
    _e(
        "parle$|parlait$|parlent$|pris$|prise$|regarde$|regardee$|regardent$|traite$ haut$",
        COU,
        BAD,
    ),
    _e("stupid|debil|imbecil|cretin|toise", COU, BAD),
    _e("respect$", COU, GOOD),
    _e("discutent$|discutaient$", COU, BAD),
    _e("ignor", COU, BAD),
    _e("condescend", COU, BAD),
    _e("disponibilit", COU, GOOD),
    _e("regarde$|regardee$|regarder$", COU, TOPIC),
    _e("grosier", COU, BAD),
    _e("insolen", COU, BAD),
    _e("iresp", COU, BAD),
    _e("agace", COU, BAD),
    _e("enerv", COU, BAD),
    _e("soupir|soufl", COU, BAD),
    _e("rigol|papot|bavard", COU, BAD),  # « rigolait avec sa collègue »
    # the agent on their own phone: « au téléphone perso », « regardait son téléphone »
    _e("telephone$|portable$ perso$|personel$", COU, BAD),
    _e("regard|regardait|regarde$ telephone$|portable$", COU, BAD),
    _e("menac", COU, BAD),
    _e("jovial", COU, GOOD),
    _e("douce$|doux$|douceur|atentione", COU, GOOD),
    _e("glacial", COU, BAD),
    _e("cordial", COU, GOOD),
    _e("avenan", COU, GOOD),
    _e("prevenan", COU, GOOD),
    _e("humeur", COU, TOPIC),
    # a role or a place, not a welcome
    _e("agent$|agente$|hotese|persone$|borne$|bornes$|banque$|hal$|espace$ acueil", None, (0, 0)),
    _e("blase", COU, BAD),
    _e("indiferen", COU, BAD),
    _e("nonchalan", COU, BAD),
    _e("execrabl|antipathi|odieu|imbuvabl|desobligean|revech|bourru|casant|cinglan", COU, BAD),
    _e("hause voix$", COU, BAD),  # « haussé la voix » (« ton » is a stopword)
    _e("parle$|parlent$|parlait$ mal$", COU, BAD),
    _e("mal$ parle", COU, BAD),
    # autre
    _e("gare", AUT, TOPIC),
    _e("parking", AUT, TOPIC),
    _e("stationn", AUT, TOPIC),
    _e("locaux$|local$", AUT, TOPIC),
    _e("sale$|sales$", AUT, BAD),
    _e("propre", AUT, GOOD),
    _e("chauf", AUT, TOPIC),
    _e("ascenseur", AUT, TOPIC),
    _e("poussette", AUT, TOPIC),
    _e("pane$|panes$", AUT, BAD),
    _e("toilete", AUT, TOPIC),
    _e("toilete ferme|fermee|fermees$", AUT, BAD),
    _e("toilete ouvert|ouvertes$", AUT, TOPIC),
    _e("questionaire|enquete|sondage long|lent|interminabl", AUT, BAD),
    _e("questionaire|enquete|sondage trop$|peu$ long|lent", AUT, BAD),
    _e(
        "questionaire|enquete|sondage beaucoup$|bien$|vraiment$|franchement$ trop$ long|lent",
        AUT,
        BAD,
    ),
    _e("enquete|questionaire satisf", AUT, TOPIC),  # the survey, not a satisfied user
    _e("toilete sont$|etaient$|etait$ ferme|fermee|fermees$", AUT, BAD),
    _e("questionaire|enquete|sondage", AUT, TOPIC),  # the survey itself, not « question »
    _e("froid$ canard$", AUT, BAD),
    # a bug on screen is no mistake in my file: « le site affiche une erreur », « message d'erreur »
    _e("afiche|afichent|mesage|mesages$|page$ ereur|ereurs$", AUT, BAD),
    _e("ereur$|ereurs$ techniq|informatiq|conexion|serveur|systeme$|404$|500$", AUT, BAD),
    _e("aseoir|asoir|endroit", AUT, TOPIC),  # « aucun endroit pour s'asseoir »
    _e("abri$|abris$|fontaine|eau$", AUT, TOPIC),
    _e("asise$|asises$|asis$", AUT, TOPIC),  # « places assises »
    _e("inconfort", AUT, BAD),
    _e("confort", AUT, GOOD),
    _e("_salle_ atent", AUT, TOPIC),
    _e("chaise", AUT, TOPIC),
    _e("wifi", AUT, TOPIC),
    _e("reseau", AUT, TOPIC),
    _e("bus$", AUT, TOPIC),
    _e("loin$", AUT, BAD),
    _e("plante", AUT, BAD),
    _e("telecharg", AUT, TOPIC),
    # the website, weak and never judged itself (« pas clairs sur le site »): a theme alone
    _e("site$|sites$", AUT, (0, 0)),
    _e("distributeur", AUT, TOPIC),
    _e("plus$ pres$", AUT, TOPIC),
    _e("bug|beug", AUT, BAD),
    _e("bruyant", AUT, BAD),
    _e("climatis", AUT, TOPIC),
    _e("velo", AUT, TOPIC),
    _e("fait$|faisait$ froid$|chaud$", AUT, BAD),
    _e("fait$ trop$ froid$|chaud$", AUT, BAD),
    _e("hors$ service$", AUT, BAD),
    _e("aplication|apli$", AUT, TOPIC),
    _e("espace$ persone|perso$", AUT, TOPIC),
    _e("conect", AUT, TOPIC),
    _e("confidential|intimit", AUT, TOPIC),  # « aucune confidentialité au guichet »
    _e("acces$", AUT, TOPIC),
    _e("transport", AUT, TOPIC),
    _e("demenag", AUT, TOPIC),
    _e("case$|cases$|casee$|casees$", AUT, BAD),  # cassé(e)s, doubled letters collapsed
    _e("vetust", AUT, BAD),
    _e("entretenu$|entretenue$|entretenus$|entretenues$|lumineu", AUT, GOOD),  # « mal entretenu »
    _e("eclair", AUT, TOPIC),
    _e("odeur", AUT, BAD),
    _e("bruit", AUT, BAD),
    _e("couloir", AUT, TOPIC),
    _e("batiment", AUT, TOPIC),
    _e("siege|banc$|bancs$", AUT, TOPIC),
    _e("borne$|bornes$", AUT, TOPIC),
    _e("ticket", AUT, TOPIC),
    _e("escalier", AUT, TOPIC),
    _e("acesib", AUT, TOPIC),
    _e("signaleti", AUT, TOPIC),
    _e("panneau", AUT, TOPIC),
    _e("mot$ pase$", AUT, TOPIC),
    _e("identifian", AUT, TOPIC),
    _e("rapel rendez|sms", AUT, TOPIC),
    _e("systeme$", AUT, TOPIC),
    _e("payer$|paiement$ carte$", AUT, TOPIC),
    _e("site$|apli|aplication|conexion|internet$ lent", AUT, BAD),
    _e("ambiance", AUT, TOPIC),
    _e("rampe$", AUT, TOPIC),
    _e("fauteuil", AUT, TOPIC),
    # tone only
    _e("merci", None, GOOD),
    _e("bravo", None, GOOD),
    _e("parfait", None, GOOD),
    _e("super$", None, GOOD),
    _e("top$", None, GOOD),
    _e("bien$", None, GOOD),
    _e("satisf", None, GOOD),
    _e("impecabl", None, GOOD),
    # praise words the lexicon lacked
    _e("calme$|convivial|eficient|fiable|ideal|performan|plaisan|soigne$|soignee$", None, GOOD),
    _e("organise$|organisee$|organises$|qualite$|profesional|investi$|investie$", None, GOOD),
    _e("devoue|consciencieu|arangean|epatan|honete|enchant", None, GOOD),
    _e("excelent", None, GOOD),
    _e("recommand", None, GOOD),
    _e("eficac", None, GOOD),
    _e("clic|clics$", None, GOOD),  # « en deux clics »
    _e("agreabl", None, GOOD),
    _e("genial", None, GOOD),
    _e("content", None, GOOD),
    _e("plaisir", None, GOOD),
    _e("continu", None, GOOD),
    _e("bon$|bone$|bons$|bones$", None, GOOD),
    _e("raisonabl", None, GOOD),
    _e("respect", None, GOOD),
    _e("simpl", None, GOOD),
    _e("facil", None, GOOD),
    _e("marche$|marchait$|marchent$|marchaient$|fonctione", None, GOOD),
    _e("marche$ suivre$", CLA, TOPIC),
    # accessibility of the site or the premises is other (the writers' rule)
    _e("lecteur|lecteurs$ ecran|ecrans$", AUT, TOPIC),  # « la marche à suivre »
    _e("pris$ temps$", None, GOOD),
    _e("correct$|correcte$|corrects$|correctes$", None, GOOD),
    _e("ok$", None, GOOD),
    _e("competen", None, GOOD),
    _e("incompeten", None, BAD),
    _e("laise$|laisent$|laisait$ desirer$", None, BAD),  # « laisse à désirer »
    _e("en$ fiche$|fichent$|fichait$|fout$|foutent$|foutait$", None, BAD),  # « ils s'en fichent »
    _e("fout$|foutent$|foutait$", None, BAD),  # « on se fout de nous »
    _e("suis$|sommes$ bout$", None, BAD),  # « je suis à bout »
    _e("comme$ prevu$", None, GOOD),
    _e("pro$|profesionel", None, GOOD),
    # a category, no praise: « revenus professionnels », « mon compte pro »
    _e(
        "revenu|revenus$|frais$|compte$|comptes$|adrese$|activite$|mail$|telephone$|numero$|"
        "declaration|local$|locaux$|vehicule$ pro$|profesionel",
        None,
        (0, 0),
    ),
    _e("plein$|pleine$|pleins$|pleines$", None, BAD),
    _e("en$ plein$|pleine$", None, (0, 0)),  # « en plein milieu », not « full »
    _e("mal$ francais$", None, (0, 0)),
    # the user's own French: « je parle pas bien français »
    _e("parle$|parlons$|lis$|ecris$|comprends$ pas$ bien$ francais$", None, (0, 0)),
    _e("parle$|parlons$|lis$|ecris$|comprends$ pas$ francais$", None, (0, 0)),
    _e("parle$|parlent$|parlait$ mal$ francais$", None, (0, 0)),
    _e("nul$|nule$|nuls$|nules$", None, BAD),
    _e("nule$ part$", None, FIXED),
    _e("importe quoi$", None, FIXED),
    _e("catastroph", None, BAD),
    _e("deplorabl", None, BAD),
    _e("desastr", None, BAD),
    _e("horibl", None, BAD),
    _e("nickel", None, GOOD),
    _e("insufisan", None, BAD),
    _e("galere", None, BAD),
    _e("parcours$ combatant", None, BAD),
    _e("digne", None, GOOD),
    _e("ravi$|ravie$|ravis$|ravies$", None, GOOD),
    _e("maitris", None, GOOD),
    _e("atentif|atentiv", COM, GOOD),
    _e("pratique$|pratiques$", None, GOOD),
    _e("apreciabl", None, GOOD),
    _e("gratuit", None, GOOD),
    _e("elargi|etendu", None, GOOD),
    _e("disponibl", None, GOOD),
    _e("inexistan", None, BAD),
    _e("exemplair", None, GOOD),
    _e("payant$|payante$", None, BAD),
    _e("pas$ jour$", None, FIXED),
    _e("decu", None, BAD),
    _e("lamentabl", None, BAD),
    _e("scandal", None, BAD),
    _e("inadmisibl", None, BAD),
    # complaint words the lexicon lacked
    _e("afligean|agacan|archai|bacle$|baclee$|bacles$|bordel|brouilon|chaoti|douteu", None, BAD),
    _e("epouvantabl|excesif|excesive|fastidieu|inefica|injust|kafka|laborieu|lourd", None, BAD),
    _e("malhonet|stres|triste|desolan|consternan|decourag|fatigan|fatigue$|neglig", None, BAD),
    _e("desordre|gachis|outree$|desesper|dur$|dure$|durs$|dures$", None, BAD),
    _e("honte", None, BAD),
    _e("abus", None, BAD),
    _e("trop$", None, BAD),
    _e("impossibl", None, BAD),
    _e("mauvais", None, BAD),
    _e("mal$", None, BAD),
    # the user's senses, no complaint: « mon père entend mal », « je vois mal »
    _e("entend$|entends$|entendent$|vois$|voit$|voient$ mal$", None, (0, 0)),
    _e("manque", None, BAD),
    _e("dificil", None, BAD),
    _e("debord", None, BAD),
    _e("vide$", None, BAD),
    _e("_fois_", None, BAD),
    _e("pour$ rien$", None, FIXED),
    _e("toujours$ pas$", None, FIXED),
    _e("sans$ reponse", None, FIXED),
    _e("grand chose$", None, BAD),
    _e("rien$ dire$|signaler$|ajouter$", None, (0, 0)),
    _e("rien$ plus$|autre$ dire$|signaler$|ajouter$", None, (0, 0)),
    _e("rien$ redire$|reprocher$", None, (1, 1)),  # « rien à redire »: praise
    _e("ras$", None, (0, 0)),
    _e("avis$|comentaire|comentaires$|remarque|remarques$|opinion|observation", None, (0, 0)),
    _e("sais$|sait$ pas$", None, (0, 0)),
    _e("rien$ special|particulier", None, (0, 0)),
    _e("verra$|verai$|verons$ bien$", None, (0, 0)),  # « on verra bien »
    _e("idee$", None, (0, 0)),  # « aucune idée »
    _e("chaque$ jour$|semaine$|mois$|annee$|an$|trimestre$", None, (0, 0)),  # a frequency
    _e("tous$|toutes$ jours$|semaines$|mois$|ans$", None, (0, 0)),  # a frequency, no wait
    _e("roulet", None, GOOD),
    _e("mieux$", None, GOOD),
    _e("mieux$ faire$", None, BAD),  # « peut mieux faire »
    _e("pire$|rabais$|moqu", None, BAD),
    _e("_sans_souci_", None, (1, 1)),
    _e("probleme|soucis$|souci$", None, (0, 0)),  # a trouble: see TROUBLES
    _e("pour$ probleme|soucis$|souci$", None, (0, 0)),  # the reason for a visit
    _e("remerci|felicit", None, GOOD),
    _e("precis$|precise$|precises$|precisement$", None, GOOD),
    _e("preciser$|precisent$|precisait$", CLA, GOOD),
    _e("ne$ precise$", CLA, FIXED),  # « le courrier ne précise pas la date »
    _e("utile$|utiles$", None, GOOD),
    _e("inutile", None, BAD),
    _e("chouet|fluide|soulag|reconaisan|heureu", None, GOOD),
    _e("grace$", None, GOOD),
    _e("dommage|regret|marre$|penibl|inaceptabl|intolerabl|ridicul|absurd|aberan", None, BAD),
    _e("ras$ bol$", None, BAD),
    _e("en$ ai$|avons$|a$ asez$", None, BAD),  # « j'en ai assez »
    _e("plus$ jamais$", None, FIXED),
    _e("derive$", None, BAD),  # « à la dérive »
    _e("bonheur$", None, GOOD),
    _e("hauteur$", None, GOOD),  # « pas à la hauteur »
    _e("en$ pleurs$|larmes$", None, BAD),
    _e("releve$ exploit|miracle|parcours", None, BAD),  # « relève de l'exploit »
    _e("rend$|rendent$ malade|fou$|folle$|dingue", None, BAD),  # « ça me rend malade »
    _e("blague$|blagues$|rigolade|mascarade|cirque$", None, BAD),  # « c'est une blague »
    _e("malheureu|helas", None, BAD),  # « malheureusement »
    _e("toujours$ meme$|memes$ chose$|choses$|histoire$|refrain$|cinema$", None, BAD),
    _e(
        "jamais$ aussi$|autant$ bien$|bone$|mieux$", None, (1, 1)
    ),  # « jamais été aussi bien reçue »
    _e("compliment", None, GOOD),
    _e("en$ or$", None, GOOD),  # « une équipe en or »
    _e("aime$|aiment$|aimait$|aimaient$ leur$ travail$|metier$", None, GOOD),
    _e("reproch|acroc|anicroche|encombre$", None, BAD),  # « aucun reproche », « sans accroc »
    _e(
        "ameliore$|amelioree$|ameliores$|amelioration$|progres$", None, GOOD
    ),  # « ça s'est amélioré »
    _e("ameliorer$", None, BAD),  # « accueil à améliorer »
    _e("moins$ atente|monde$|queue$", DEL, GOOD),  # « moins d'attente qu'avant »
    # opinions in words the lexicon lacked: praise
    _e("formidabl|extraordinair|magnifi|merveil|remarquabl|admirabl|fantasti|chapeau$", None, GOOD),
    _e("extra$|cool$|impec$|nikel|serieu|rigoureu|irepro|exceptionel|bluf|nicke", None, GOOD),
    # ... and complaint
    _e("minabl|pitoyabl|navr|degout|ecoeur|indign|insuport|infernal|enfer$|cauchemar", None, BAD),
    _e(
        "calvaire|usant$|epuis|chiant|relou|naze$|pourri$|pourie$|craint$|nulos|mecontent",
        None,
        BAD,
    ),
    _e(
        "colere|furieu|enrag|exasper|decevan|decep|insatisf|frustr|choqu|inhumain|arnaq|escroq",
        None,
        BAD,
    ),
    _e("anormal|honteu|foutag|nada$|dalle$", None, BAD),
    _e("importe comment$", None, FIXED),  # « n'importe comment »
    _e("normal$|normale$", None, TOPIC),  # « pas normal »
    _e("sans$ plus$", None, (0, 0)),  # « correct, sans plus »
    _e("corect|bien$|ok$|bon$|bone$|pasable|moyen sans$ plus$", None, (0, 0)),
    # the user's own plight is no complaint: « compréhensive face à ma situation difficile »
    _e("face$ retard|dificult|dificil|ereur|detres|colere|stres|probleme|soucis$", None, (0, 0)),
    _e("situation$ dificil|compliq|delicat|precair", None, (0, 0)),
    _e("situation$ pourtant$ dificil|compliq|delicat|precair", None, (0, 0)),
    # came with a relative: no help judged
    _e(
        "acompagne$|acompagnee$|acompagnes$ fils$|file$|mari$|femme$|mere$|pere$|enfant"
        "|epoux|epouse|ami$|amie$|soeur|frere|parent",
        None,
        (0, 0),
    ),
    _e("faux$|fause$|fauses$|erone", None, BAD),  # « le numéro sur le site est faux »
    _e("persone$ pour$", None, FIXED),  # « personne pour nous accueillir »
    _e("saisi$", COM, GOOD),  # « n'a pas saisi ce que je demandais »
    # round nine: a wrong belief about my case (« a cru que je demandais le RSA »), stuck on an
    # idea, having to explain everything to them
    _e("cru$|crue$|crus$|croyait$|croyaient$", COM, FIXED),
    _e("reste|restait|campe|campait|bute idee$|position$|positions$", COM, BAD),
    _e("tout$ leur$ expliq|reexpliq", COM, BAD),
    _e("beau$ expliq|dire$|repeter|insister|montrer", COM, BAD),  # « j'avais beau expliquer »
    _e("vu$|cerne$|identifie$|compris$ probleme|soucis$|souci$", COM, GOOD),  # « vu le problème »
    _e("juger$", None, (0, 0)),  # « je ne peux pas juger »
    _e("grand chose$ dire$|signaler$|ajouter$", None, (0, 0)),
    _e("mediocr|bof$", None, BAD),
    _e("terribl", None, FIXED),
    # round nine: nothing to say, as the writers said it
    _e("sugest|suger", None, (0, 0)),  # « pas de suggestion », « rien à suggérer »
    _e("concerne$|concernee$|concernes$|concernees$", None, (0, 0)),  # « pas concerné »
    # « ne concerne pas (du tout) mon cas »: the answer, not the user
    _e("concerne$|concernait$ pas$ cas$|situation|dosier|demande|question", REP, FIXED),
    _e("concerne$|concernait$ pas$ tout$ cas$|situation|dosier|demande|question", REP, FIXED),
    _e("prononce", None, (0, 0)),  # « je ne me prononce pas »
    _e("vois$|voit$ pas$|rien$", None, (0, 0)),  # « je ne vois pas »
    _e("pas$|rien$ pour$ instant$|moment$", None, (0, 0)),  # « pas pour l'instant »
    _e("pas$ vraiment$|specialement$|particulierement$", None, (0, 0)),  # « non pas vraiment »
    _e("non$ merci$", None, (0, 0)),
    _e("sans$ objet$", None, (0, 0)),  # « sans objet »
    _e("sais$|sait$ pas$ trop$", None, (0, 0)),  # « je sais pas trop »
    _e("autre$|autres$ question|questions$", None, (0, 0)),  # « pas d'autres questions »
    _e("joli|modern|court$|courte$|courts$|courtes$", None, GOOD),  # « enquête courte »
)

# Things a verbatim names in passing (« remplir le formulaire », « mon courrier est resté sans
# réponse »): their theme counts only when no other theme is found, or when they are judged.
WEAK_TOPICS = frozenset(
    [
        "formulair",
        "courier",
        "detail",
        "apel",
        "telephon",
        "viremen|paiemen|versemen",
        "rembours",
        "site$|sites$",
        "internet$",
        "site$|sites$ internet$",
        "ordinateur",
        "verse$|versee$|verses$|versees$|vire$|viree$|vires$",
        "traitement$|traitements$",
        "traiter$",
        "demarche",
        "decision",
        "ecran$|ecrans$",
        "question",
        "lieu$",
        "trace$|traces$",
        "interlocuteur",
        "pour$|avant$ rendez vous$",
        "visio",
    ]
)
# A bare duration or « depuis »: beside a breakdown of the premises or the site (« l'ascenseur
# est en panne depuis des mois », « l'appli bug depuis une semaine ») it tells how long the thing
# has been broken, no wait for the service; the delay counts only with a word that judges one.
DURATIONS = frozenset(["_duree_", "heures$|semaines$|mois$|jours$", "depuis", "longtemps$"])
# Saying there is nothing to say: a negation beside them (« je n'ai rien à signaler ») is no
# complaint. Other neutral entries (« en ligne », « tout le monde ») keep a negated statement one.
NOTHING_TO_SAY = frozenset(
    [
        "rien$ dire$|signaler$|ajouter$",
        "ras$",
        "avis$|comentaire|comentaires$|remarque|remarques$|opinion|observation",
        "sans$ plus$",
        "corect|bien$|ok$|bon$|bone$|pasable|moyen sans$ plus$",  # « correct sans plus »
        "grand chose$ dire$|signaler$|ajouter$",
        "sais$|sait$ pas$",
        "rien$ plus$|autre$ dire$|signaler$|ajouter$",
        "rien$ special|particulier",
        "idee$",
        "sugest|suger",
        "concerne$|concernee$|concernes$|concernees$",
        "prononce",
        "vois$|voit$ pas$|rien$",
        "pas$|rien$ pour$ instant$|moment$",
        "pas$ vraiment$|specialement$|particulierement$",
        "non$ merci$",
        "sans$ objet$",
        "sais$|sait$ pas$ trop$",
        "autre$|autres$ question|questions$",
        "juger$",
    ]
)
# A trouble named with no opinion word (« j'ai un problème avec mon dossier ») is a complaint,
# beside praise it is what was solved (« a réglé mon problème »): it decides only an otherwise
# opinion-less verbatim, like a negated statement.
TROUBLES = frozenset(["probleme|soucis$|souci$"])
# Praise taken back to a shrug (« c'est correct, sans plus »): with no complaint, neutre.
LUKEWARM = frozenset(["sans$ plus$", "corect|bien$|ok$|bon$|bone$|pasable|moyen sans$ plus$"])
NEGATORS = frozenset(
    {"pas", "jamais", "aucun", "aucune", "sans", "peu", "ni", "rien", "n", "ne", "non", "zero"}
    # a refusal negates what follows: « l'agent a refusé de m'écouter »
    | {"refuse", "refusee", "refuses", "refusees", "refusent", "refusait", "refusaient", "refuser"}
)
_NE = frozenset(["n", "ne"])
_AFTER_VERB = frozenset(["pas", "jamais"])
# « pas » then these bears on what follows (« pas de retour », « pas très aimable »)
_PAS_BEARS_ON_NEXT = [
    [w]
    for w in (
        *("de", "d", "du", "des", "trop", "tres", "assez", "si", "vraiment", "a", "au"),
        *("encore", "toujours", "tout", "mal", "bien", "beaucoup", "plus", "un", "une", "le", "la"),
    )
]
_SECOND_NEGATORS = frozenset(["pas", "jamais", "rien", "plus"])
STOPWORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "l",
        "un",
        "une",
        "des",
        "de",
        "du",
        "d",
        "a",
        "au",
        "aux",
        "et",
        "ou",
        "ce",
        "c",
        "se",
        "je",
        "j",
        "il",
        "elle",
        "on",
        "me",
        "m",
        "te",
        "t",
        "mon",
        "ma",
        "mes",
        "son",
        "sa",
        "ses",
        "ton",
        "ta",
        "tes",
        "votre",
        "vos",
        "notre",
        "nos",
        "que",
        "qu",
        "qui",
        "y",
        "tres",
        "est",
        "etait",
        "ete",
        "sur",
        "par",
        "avec",
        # « j'ai eu », « mes trois courriers »: no entry reads them, a pattern reads past them
        "eu",
        "deux",
        "trois",
        "quatre",
        "cinq",
        "2",
        "3",
        "4",
        "5",
    ]
)
# SMS forms and common misspellings, on lower-case accent-free words.
SPELLING = {
    "tro": "trop",
    "pa": "pas",
    "tjs": "toujours",
    "tjrs": "toujours",
    "qqn": "quelqu",
    "qq1": "quelqu",
    "tel": "telephone",
    "rep": "reponse",
    "acceuil": "accueil",
    "acceuillant": "accueillant",
    "acceuillante": "accueillante",
    "acceuillants": "accueillants",
    "rdv": "rendez",
    "pb": "probleme",
    "bcp": "beaucoup",
    "ms": "mais",
    "mm": "meme",
    "jariv": "arrive",
    "mont": "ont",
    "rep0nse": "reponse",
    "koi": "quoi",
    "salle": "_salle_",  # not « sale » once doubled letters are collapsed
    "salles": "_salle_",
    "nimporte": "importe",
    "jamai": "jamais",
    "reponce": "reponse",
    "nikel": "nickel",
    "davoir": "avoir",
    "dobtenir": "obtenir",
    "jai": "ai",
    "jsuis": "suis",
    "jsui": "suis",
    "cest": "c",
    "ke": "que",
    "mrc": "merci",
    "mci": "merci",
    "mr6": "merci",
    "tjr": "toujours",
    "tjour": "toujours",
    "tjours": "toujours",
    "b1": "bien",
    "bi1": "bien",
    "jms": "jamais",
    "jame": "jamais",
    "pk": "pourquoi",
    "pkoi": "pourquoi",
    "pourkoi": "pourquoi",
    "qqun": "quelqu",
    "qqu": "quelqu",
    "kelkun": "quelqu",
    "pbs": "probleme",
    "pbm": "probleme",
    "msg": "message",
    "nvl": "nouvelles",
    "nvelles": "nouvelles",
    "rpd": "rapide",
    "dsl": "desole",
    "ds": "dans",
    "tt": "tout",
    "svt": "souvent",
    "rdvs": "rendez",
    "reponces": "reponses",
    "acceil": "accueil",
    "accueuil": "accueil",
    "aceuil": "accueil",
    "amable": "aimable",
    "aimabe": "aimable",
    "sympat": "sympa",
    "sinpa": "sympa",
    "attante": "attente",
    "atante": "attente",
    "delait": "delai",
    "delaie": "delai",
    "sere": "serait",  # « ce seré bien »
    "seret": "serait",
    "srait": "serait",
    "case": "_case_",  # a box to tick, not « cassé » once doubled letters are collapsed
    "cases": "_case_",
    "svp": "_svp_",
    "stp": "_svp_",
}
_ROTTEN = frozenset(["pourri", "pourrie", "pourris", "pourries"])  # not « pourrions »
_SUGGESTION_WORDS = ("faudr", "devri", "pourri", "pourait", "aimerai", "souhait", "sugger")
_SERAIT_AFTER = frozenset(
    [
        "bienvenu",
        "bienvenue",
        "souhaitable",
        "judicieux",
        "bien",
        "mieux",
        "pratique",
        "un",
        "une",
        "utile",
        "bon",
        "super",
        "top",
        "plus",
        "apreciable",
        "ideal",
        "sympa",
        # round nine (compared with doubled letters collapsed)
        "apreciable",
        "aprecie",
        "apreciee",
        "aprecies",
        "apreciees",
        "necesaire",
        "important",
        "interesant",
        "genial",
        "parfait",
        "cool",
        "agreable",
        "simple",
        "logique",
    ]
)
_IMPERATIVE_START = frozenset(
    {"metre", "ajouter", "instaler", "prevoir", "proposer", "creer", "embaucher", "recruter"}
    | {"pensez", "metez", "ajoutez", "prevoyez", "instalez", "proposez", "ouvrez", "embauchez"}
    | {"recrutez", "augmenter"}
    # round nine: a wish written as an infinitive (« Former le personnel », « Ouvrir le soir »)
    | {"former", "ouvrir", "pouvoir", "doner", "remetre", "simplifier", "accelerer", "afficher"}
    | {"informer", "indiquer", "ameliorer", "reduire", "developer", "permetre", "faciliter"}
    | {"eviter", "rendre", "privilegier", "renforcer", "revoir", "suprimer", "harmoniser"}
    | {"multiplier", "envoyer", "faites", "soyez", "dites"}
)
# An imperative opening a clause (« Souriez un peu », « prévenez-nous »): a verb in « -ez »,
# but not these words nor a praise (« Continuez comme ça ! » is satisfaction) nor a plain
# request to be contacted (« contactez-moi à [email] »).
_NOT_IMPERATIVE = frozenset(
    {"assez", "chez", "nez", "rez", "rendez", "continuez", "vous", "avez", "savez", "voulez"}
    | {"sachez", "gardez", "conservez"}
    | {"veuillez", "recevez", "agreez"}  # a letter's closing: « Veuillez agréer mes salutations »
)
# « serait » reported, not proposed: « on m'avait dit que ce serait réglé »
_REPORTED = frozenset({"que", "qu"})
_FILLERS = frozenset({"peut", "etre", "_svp_", "juste", "donc", "alors", "bref", "sinon", "aussi"})
_NOT_INFINITIVE = frozenset(
    {"avoir", "etre", "votre", "notre", "autre", "entre", "contre", "premiere", "derniere"}
)
_PRONOUNS = frozenset({"m", "me", "nous", "l", "les", "le", "la", "y", "en", "bien", "tout"})
_WISHED = frozenset({"aurais", "aurait", "aurions", "auraient"})
# a suggestion word negated is no suggestion: « rien à suggérer », « aucune suggestion »
_NO_SUGGESTION = frozenset({"rien", "pas", "aucun", "aucune", "sans", "non", "ras"})

_REDACTION = re.compile(r"\[[^\]]*\]")
# « rdv » (SMS) reads as « rendez vous », so « rdv obtenu » meets « rendez-vous obtenu »
_RDV = re.compile(r"\brdvs?\b")
# An age (« ma mère de 87 ans », « j'ai 72 ans ») is no duration
_SANS_RDV = re.compile(r"\bsans\s+rendez[\s-]*vous\b")  # a way in, not a negation
_AGE = re.compile(r"\b(?:de|ai|a|agee?s?)\s+\d{2,3}\s*ans\b")
# A time of day (« entre 9h et 12h », « à 14h ») is no duration.
_CLOCK = re.compile(
    r"\b(?:entre|a|vers|des)\s+\d{1,2}\s*h\d{0,2}(?:\s+(?:et|a)\s+\d{1,2}\s*h\d{0,2})?\b"
    r"|\bde\s+\d{1,2}\s*h\d{0,2}\s+a\s+\d{1,2}\s*h\d{0,2}\b"  # « de 9h à 16h »
)
_DURATION = re.compile(
    r"\b(?:\d+\s*(?:h|heures?|minutes?|mins?|mn|semaines?|mois|jours?|ans?)(?:\d+)?"
    r"|une?\s+(?:heure|semaine|mois|an)"
    r"|(?:un\s+)?quart\s+d\s*heure"
    r"|(?:deux|trois|quatre|cinq|six|sept|huit|dix|quinze|vingt|trente|quarante|plusieurs"
    r"|quelques)\s+"
    r"(?:heures|minutes|semaines|mois|jours|ans))\b"
)
_TIMES = re.compile(
    r"\b(?:(?:\d+|deux|trois|quatre|cinq|six|dix|quinze|vingt|plusieurs)"
    r"|(?:\d+|deux|trois|quatr|cinqu|six|dix)(?:e|eme|ieme))\s+fois\b"
)
# Who did not understand: « je n'ai rien compris », « on ne comprend rien » (the user: clarity),
# not « elle n'a pas compris ma demande », « j'ai été bien compris » (the agent: comprehension).
_FIRST_PERSON = frozenset(["je", "j", "on"])
_OTHER_PERSON = frozenset(
    [
        "il",
        "elle",
        "ils",
        "elles",
        "qui",
        "m",
        "ma",
        "nous",
        "ete",
        "agent",
        "conseiller",
        "conseillere",
        "personne",
        "dame",
        "monsieur",
        "madame",
        # round nine: « je ne me suis pas sentie comprise »: the user was understood
        "me",
        "senti",
        "sentie",
        "sentis",
        "senties",
    ]
)
# What was (not) understood decides who did when no one else is named: « on a pas compris ma
# situation » is the agent, « pas du tout compris la réponse » the user.
_AGENT_OBJECTS = frozenset(
    ["situation", "dossier", "demande", "cas", "besoin", "probleme", "question", "besoins"]
)
_DETERMINERS = frozenset(["la", "le", "les", "l", "ma", "mon", "mes", "sa", "son", "ses", "du"])
_USER_OBJECTS = frozenset(
    ["reponse", "lettre", "courrier", "explication", "explications", "formulaire", "message"]
)
_ASKED = frozenset(
    ["voulais", "voulait", "veux", "demandais", "demandait", "cherchais", "disais", "venais"]
)
_BEFORE_UNDERSTOOD = frozenset(["du", "tout", "bien", "vraiment", "trop", "grand", "chose"])
_USER_UNDERSTOOD = "_je_compr_"
_EASY_OR_HARD = frozenset(
    [
        "simple",
        "simples",
        "facile",
        "faciles",
        "dur",
        "dure",
        "durs",
        "dures",
        "difficile",
        "difficiles",
        "complique",
        "compliquee",
        "compliques",
        "compliquees",
        "impossible",
    ]
)
# « pas de problème », « aucun souci », « sans soucis »: the negator is the trouble's own, not a
# verb's (« ils comprennent rien à nos problèmes » is no praise).
# « au lieu de m'écouter »: what is done instead is not done, read as « sans »
_INSTEAD = re.compile(r"\bau\s+lieu\s+d(?:e|u|es)?\b")
# Expecting is no waiting: « je ne m'attendais pas à », « s'attendre à », « ce que j'attendais »
_EXPECT = re.compile(
    r"\b(?:(?:ne?\s+)?(?:m|s|t)\s+(?:y\s+)?|que\s+j\s+)at+end(?:ais|ait|ions|iez|aient|re|s)?"
    r"(?:\s+pas)?\b"
)  # « je ne m'attendais pas à un service aussi efficace » is surprised praise, not a negation
_NO_TROUBLE = re.compile(
    r"\b(?:sans|pas|aucune?|jamais)\s+(?:de\s+|d\s+)?(?:problemes?|soucis?|pbs?)\b"
)
_CLAUSE = re.compile(r"[.!?;,:()\n]+|\bmais\b|\bms\b")
_WORD = re.compile(r"[a-z0-9_]+")
_DOUBLE = re.compile(r"(.)\1+")


@dataclass(frozen=True)
class _Compiled:
    alternatives: tuple[tuple[tuple[str, bool], ...], ...]  # per word: (stem, exact)
    theme: str | None
    plain: int
    negated: int
    size: int
    weak: bool = False
    trouble: bool = False
    nothing_to_say: bool = False
    lukewarm: bool = False
    still_not: bool = False
    duration: bool = False


def _collapse(word: str) -> str:
    return _DOUBLE.sub(r"\1", word)


def _compile(entry: _Entry) -> _Compiled:
    pattern, theme, plain, negated = entry
    words = []
    for word in pattern.split():
        options = []
        for option in word.split("|"):
            exact = option.endswith("$")
            options.append((_collapse(option.rstrip("$")), exact))
        words.append(tuple(options))
    first = len(pattern.split()[0].split("|")[0])
    weak = pattern in WEAK_TOPICS
    trouble = pattern in TROUBLES
    size = len(words) * 100 + first
    quiet = pattern in NOTHING_TO_SAY
    shrug = pattern in LUKEWARM
    still = pattern == STILL_NOT
    bare = pattern in DURATIONS
    return _Compiled(
        tuple(words), theme, plain, negated, size, weak, trouble, quiet, shrug, still, bare
    )


_COMPILED = tuple(sorted((_compile(e) for e in LEXICON), key=lambda c: -c.size))


def _index(entries: tuple[_Compiled, ...]) -> dict[str, tuple[_Compiled, ...]]:
    """Entries by the first two letters of their first word (every stem has two or more), longest
    first: a word is compared with the few entries that can start on it."""
    buckets: dict[str, list[_Compiled]] = {}
    for entry in entries:
        for stem, _ in entry.alternatives[0]:
            bucket = buckets.setdefault(stem[:2], [])
            if entry not in bucket:
                bucket.append(entry)
    return {key: tuple(bucket) for key, bucket in buckets.items()}


_BY_START = _index(_COMPILED)


# A piece of a text a normalising step rewrote: (start, end) in the new text, (start, end) in
# the text before the step. A step is the list of its pieces, in order; the rest is unchanged.
_Edit = tuple[int, int, int, int]


def _fold_char(char: str) -> str:
    # « cœur », « œuvre »: the ligatures have no decomposition
    decomposed = unicodedata.normalize("NFKD", char.lower().replace("œ", "oe").replace("æ", "ae"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Latin letters, their accents and the punctuation a verbatim uses, folded once.
_FOLDED = {chr(code): _fold_char(chr(code)) for code in range(0x370)} | {
    char: _fold_char(char) for char in "’‘«»“”–—…œŒ"
}


def _fold(text: str) -> tuple[str, list[_Edit]]:
    """Lower case, accents stripped, character by character (so « é » is still where it was)."""
    if text.isascii():
        return text.lower(), []
    parts = [_FOLDED[c] if c in _FOLDED else _fold_char(c) for c in text]
    folded = "".join(parts)
    lengths = list(map(len, parts))
    if len(folded) == len(text) and min(lengths) == 1:
        return folded, []
    edits: list[_Edit] = []
    position = 0
    for index, length in enumerate(lengths):
        if length != 1:  # « ﬁ » → « fi », a combining accent → nothing
            edits.append((position, position + length, index, index + 1))
        position += length
    return folded, edits


def _sub(pattern: re.Pattern[str], replacement: str, text: str, steps: list[list[_Edit]]) -> str:
    """`pattern.sub(replacement, text)`, the pieces it rewrote appended to `steps`."""
    if pattern.search(text) is None:  # most verbatims: nothing to rewrite
        return text
    pieces: list[str] = []
    edits: list[_Edit] = []
    last = position = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        pieces.append(text[last:start])
        position += start - last
        pieces.append(replacement)
        edits.append((position, position + len(replacement), start, end))
        position += len(replacement)
        last = end
    pieces.append(text[last:])
    steps.append(edits)
    return "".join(pieces)


def _back(edits: list[_Edit], position: int, *, end: bool) -> int:
    """Where a word's start (or end) in a step's text was in the text before the step: inside a
    rewritten piece, the piece's start (or end); past a piece removed at its end (a combining
    accent after « décroche »), the end keeps it."""
    shift = 0
    for new_start, new_end, old_start, old_end in edits:
        if new_end <= position:
            shift = old_end - new_end
        elif new_start < position or (new_start == position and not end):
            return old_end if end else old_start
        else:
            break
    return position + shift


def _written(text: str, steps: list[list[_Edit]], start: int, end: int) -> str:
    """The verbatim's own words between two places of its normalised text."""
    for edits in reversed(steps):
        start, end = _back(edits, start, end=False), _back(edits, end, end=True)
    return " ".join(text[start:end].split())


def _clauses(folded: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each clause, as `_CLAUSE.split` cuts them."""
    start = 0
    for separator in _CLAUSE.finditer(folded):
        yield start, separator.start()
        start = separator.end()
    yield start, len(folded)


def _who_understood(words: list[str]) -> list[str]:
    """Words to match: a form of « comprendre » whose subject is the user becomes a clarity
    marker: the nearest person before it decides, or a clause that opens on « rien/pas compris »."""
    marked = list(words)
    for index, word in enumerate(words):
        if not word.startswith("compr") or word.startswith(("comprehensi", "comprehensibl")):
            continue
        before = words[:index]
        if before[-2:-1] and before[-1] == "a" and before[-2] in _EASY_OR_HARD:
            marked[index] = _USER_UNDERSTOOD  # « simple à comprendre »: for the user
            continue
        person = next((w for w in reversed(before) if w in _FIRST_PERSON | _OTHER_PERSON), None)
        after = words[index + 1 : index + 4]
        obj = next((w for w in after if w not in _DETERMINERS and w != "tout"), None)
        if person in (None, "on") and (
            obj in _AGENT_OBJECTS or _ASKED.intersection(words[index + 1 : index + 6])
        ):
            continue  # « on a pas compris ma situation », « bien compris ce que je voulais »
        if person in _FIRST_PERSON or (
            person is None
            and before
            and all(w in NEGATORS or w in _BEFORE_UNDERSTOOD for w in before)
        ):
            marked[index] = _USER_UNDERSTOOD
        elif person is None and obj in _USER_OBJECTS:
            marked[index] = _USER_UNDERSTOOD  # « compris la lettre »: the user
    return marked


def _unelided(word: str) -> str:
    """« lattente », « daide », « lecoute »: an elided article glued to a lexicon word (SMS)."""
    if (
        len(word) > 4
        and word[0] in "ldjmnst"
        and word[1] in "aeiouyh"
        and _match([(word, word, False)], 0) is None
        and _match([(word[1:], word, False)], 0) is not None
    ):
        return word[1:]
    return word


def _word_matches(options: tuple[tuple[str, bool], ...], word: str) -> bool:
    return any(word == stem if exact else word.startswith(stem) for stem, exact in options)


def _suggestion(words: list[str]) -> list[tuple[int, int]]:
    """The suggestion markers, each as (first, last) index of its words."""
    found = [
        (index, index)
        for index, w in enumerate(words)
        if (
            (w.startswith(_SUGGESTION_WORDS) and w not in _ROTTEN)
            or w in ("ferait", "devrait", "devraient", "_svp_", "suggestion", "suggestions")
        )
        # « rien à suggérer », « pas de suggestion », « suggestion : aucune »
        and not (
            w.startswith("sugge")
            and _NO_SUGGESTION.intersection(words[max(0, index - 3) : index + 3])
        )
    ]
    for index, word in enumerate(words):
        if word == "serait":
            before = words[index - 1] if index else ""
            after = words[index + 1] if index + 1 < len(words) else ""
            if after in ("le", "la", "les") and index + 2 < len(words):
                after = words[index + 2]  # « serait le bienvenu »
            reported = index >= 2 and words[index - 2] in _REPORTED
            if (before in ("ce", "il", "ideal", "mieux") and not reported) or _collapse(
                after
            ) in _SERAIT_AFTER:  # « l'idéal serait », « le mieux serait »
                found.append((index, index))
        if word in ("propose", "suggere") and index and words[index - 1] == "je":
            found.append((index - 1, index))  # « je propose »
        if word == "pense" and index and words[index - 1] == "vous":
            found.append((index - 1, index))  # « avez-vous pensé à »
        if word in ("aime", "aimee", "voulu") and index and words[index - 1] in _WISHED:
            found.append((index - 1, index))  # « j'aurais aimé être informée »
        if (
            word in ("pourrait", "pourraient")
            and words[index + 1 : index + 2] == ["etre"]
            and words[index + 2 : index + 3] in (["plus"], ["mieux"], ["moins"])
        ):
            found.append((index, index + 2))  # « le questionnaire pourrait être plus court »
        if word == "seulement" and index and words[index - 1] == "si":
            found.append((index - 1, index))  # « si seulement »
        if word == "conseil" and index and words[index - 1] == "un":
            found.append((index - 1, index))  # « un conseil »
        if word == "pourquoi" and words[index + 1 : index + 3] == ["ne", "pas"]:
            found.append((index, index + 2))  # « pourquoi ne pas »
        if word == "pourquoi" and words[index + 1 : index + 2] == ["pas"]:
            found.append((index, index + 1))  # « pourquoi pas »
    # a wish opening on an infinitive, after a filler: « Peut-être prévoir plus de guichets »
    start = 0
    while start < len(words) - 1 and words[start] in _FILLERS:
        start += 1
    if (
        words
        and _collapse(words[start]) in _IMPERATIVE_START
        and "_fois_" not in words[start + 1 : start + 4]
    ):
        found.append((start, start))
    for index, word in enumerate(words):
        # « Merci de rappeler les gens »: a request (not « merci de m'avoir aidé »)
        if word == "merci" and words[index + 1 : index + 2] in (["de"], ["d"]):
            verb = next((w for w in words[index + 2 : index + 4] if w not in _PRONOUNS), "")
            if verb.endswith(("er", "ir", "re")) and verb not in _NOT_INFINITIVE:
                found.append((index, index + 1))
        if word == "hesitez" and index and words[index - 1] in ("n", "ne"):
            found.append((index - 1, index))  # « n'hésitez pas à »
    return found


def _waits_for_contact(written: str) -> bool:
    lower = written.lower()
    return lower[:3] in ("tel", "tél") or lower.startswith(_APPOINTMENT)


_APPOINTMENT = ("pour un rendez", "pour un rdv", "avant un rendez", "avant un rdv")


def tag(text: str) -> Tagging:
    """Themes and tone of one verbatim, with the words that triggered each."""
    steps: list[list[_Edit]] = []  # each normalising step's rewrites, to give words back
    folded, edits = _fold(_sub(_REDACTION, " . ", text, steps))
    if edits:
        steps.append(edits)
    folded = folded.replace("’", " ").replace("'", " ")
    folded = _sub(_RDV, "rendez vous", folded, steps)
    folded = _sub(_AGE, " _age_ ", folded, steps)
    folded = _sub(_SANS_RDV, " _sans_rdv_ ", folded, steps)
    folded = _sub(_CLOCK, " _heure_ ", folded, steps)
    folded = _sub(_DURATION, " _duree_ ", folded, steps)
    folded = _sub(_TIMES, " _fois_ ", folded, steps)
    folded = _sub(_NO_TROUBLE, " _sans_souci_ ", folded, steps)
    folded = _sub(_INSTEAD, " sans ", folded, steps)
    folded = _sub(_EXPECT, " _s_attendre_ ", folded, steps)
    theme_words: dict[str, list[str]] = {}  # the words as the user wrote them, as below
    positive: list[str] = []
    negative: list[str] = []
    all_words: list[str] = []
    all_places: list[tuple[int, int]] = []  # (start, end) of each word in `folded`
    imperatives: list[int] = []  # index in `all_words` of a clause opening on an imperative
    negation: list[str] = []  # the negators of the first clause that negates a word
    troubles: list[str] = []  # « problème », « souci » read plainly
    nothing_to_say = False  # « rien à signaler », « pas d'avis »
    lukewarm = False  # « sans plus »
    still_not: list[str] = []  # « toujours pas reçu »
    wait_judged = False  # a delay word other than a bare duration
    strong: set[str] = set()  # themes with a word other than a weak topic
    complained: set[str] = set()  # themes with a complaint
    for clause_start, clause_end in _clauses(folded):
        found = list(_WORD.finditer(folded, clause_start, clause_end))
        raw = [SPELLING.get(m.group(), m.group()) for m in found]
        places = [m.span() for m in found]
        if (
            raw
            and len(raw[0]) > 3
            and raw[0].endswith("ez")
            and (raw[0] not in _NOT_IMPERATIVE or (raw[0] == "rendez" and raw[1:2] != ["vous"]))
            and raw[1:2] != ["moi"]
        ):  # « Rendez le site accessible » proposes, « rendez-vous » does not
            imperatives.append(len(all_words))  # « Souriez un peu », « prévenez-nous »
        all_words.extend(raw)
        all_places.extend(places)
        # (word for matching, surface word, negated), and where each is in `folded`
        content: list[tuple[str, str, bool]] = []
        content_places: list[tuple[int, int]] = []
        negated = negated_word = False
        negators: list[str] = []
        for at, (marked, word, place) in enumerate(
            zip(_who_understood(raw), raw, places, strict=True)
        ):
            if word == "que" and negators and all(n in _NE for n in negators):
                # « ne … que » restricts, it negates nothing: « je ne peux que recommander »
                negated, negators = False, []
            if word in STOPWORDS:
                continue
            content.append((_unelided(_collapse(marked)), word, negated))
            content_places.append(place)
            if word in NEGATORS and "pourquoi" in [w for w, _, _ in content[-3:-1]]:
                continue  # « pourquoi ne pas ouvrir le samedi »: a proposal, nothing negated
            if (
                word in _AFTER_VERB
                and not negators
                and len(content) > 1
                and at
                and raw[at - 1] == content[-2][1]
                and raw[at - 1] not in NEGATORS
                and raw[at + 1 : at + 2] not in _PAS_BEARS_ON_NEXT
            ):
                # spoken French drops « ne »: « je comprends pas », « ça marche pas », « il
                # comprenait pas ma demande » negate the verb before « pas »
                content[-2] = (content[-2][0], content[-2][1], True)
                negated_word = True
            if word in NEGATORS:
                negators.append(word)
                # « qu'on n'a pas », « ce n'est pas »: ne…pas with only small words between
                negated_word |= negated and word in _SECOND_NEGATORS and content[-2][1] in _NE
                negated = True
            elif negated:
                negated_word = True
        if negated_word and not negation:
            # from the clause's first negator to its last, as written: « n'ai jamais »
            ends = [
                p for (_, w, _), p in zip(content, content_places, strict=True) if w in NEGATORS
            ]
            negation.append(_written(text, steps, ends[0][0], ends[-1][1]))
        index = 0
        intensifier: str | None = None  # « trop » right before praise: « trop sympa »
        # a negator bears on the first thing judged after it: « pas très aimable au téléphone »
        # does not complain of the phone (a topic named after it stays a topic until the next
        # negator: « ni »)
        judged_since_negator = False
        # the negator of « rien à ajouter » is spent on it: « rien à ajouter à ce que j'ai dit au
        # téléphone » does not complain of the phone (until a next negator)
        spent = False
        while index < len(content):
            hit = _match(content, index)
            if hit is None:
                if content[index][1] in NEGATORS:
                    judged_since_negator = spent = False
                index += 1
                intensifier = None
                continue
            entry = hit
            size = len(entry.alternatives)
            span = content[index : index + size]
            written = _written(
                text, steps, content_places[index][0], content_places[index + size - 1][1]
            )
            polarity = entry.negated if span[0][2] and not spent else entry.plain
            if span[0][1] in NEGATORS:
                spent = False
            spent |= entry.nothing_to_say and any(w == "rien" for _, w, _ in span)
            if entry.still_not:
                still_not.append(written)
            if entry.theme == DEL and not entry.duration:
                wait_judged = True
            if span[0][2] and judged_since_negator and entry.plain == 0 and polarity < 0:
                polarity = 0
            if any(word in NEGATORS for _, word, _ in span[1:]):
                judged_since_negator = False
            elif span[0][2] and polarity and span[0][1] not in NEGATORS:
                judged_since_negator = True
            nothing_to_say |= entry.nothing_to_say
            lukewarm |= entry.lukewarm
            if entry.trouble and not span[0][2]:
                troubles.append(written)
            if intensifier is not None and polarity > 0:
                negative.remove(intensifier)
            intensifier = written if size == 1 and span[0][1] == "trop" and polarity < 0 else None
            if entry.theme is not None:
                theme_words.setdefault(entry.theme, []).append(written)
                if not entry.weak or polarity:
                    strong.add(entry.theme)
            if polarity > 0:
                positive.append(written)
            elif polarity < 0:
                negative.append(written)
                if entry.theme is not None:
                    complained.add(entry.theme)
            index += len(entry.alternatives)
    suggestion = [
        _written(text, steps, all_places[first][0], all_places[last][1])
        for first, last in dict.fromkeys(_suggestion(all_words) + [(i, i) for i in imperatives])
    ]
    if suggestion:
        tone, tone_words = "suggestion", suggestion
    elif negative:
        tone, tone_words = "irritant", negative
    elif (
        positive
        and not lukewarm
        and all_words != ["ok"]  # a bare « ok » is no opinion
        # « aucune suggestion pour l'instant, merci »: thanks after nothing to say is politeness
        and not (
            nothing_to_say and negation and all(p.lower().startswith("merci") for p in positive)
        )
    ):
        tone, tone_words = "satisfaction", positive
    elif negation and not nothing_to_say:
        # no opinion word but a negated statement: « l'appli ne fonctionne plus », « pas de
        # rampe » — users write to complain far more than to state a negative fact
        tone, tone_words = "irritant", negation
    elif troubles:
        tone, tone_words = "irritant", troubles
    else:
        # topic words with no opinion (« j'ai appelé pour un changement d'adresse »): no theme
        tone, tone_words, theme_words = "neutre", [], {}
    if AUT in theme_words and DEL in theme_words and not wait_judged and complained <= {AUT, DEL}:
        del theme_words[DEL]  # « en panne depuis des mois »: how long it is broken, no wait
        strong.discard(DEL)
    if any(w.lower().startswith("horaire") for w in theme_words.get(CON, ())) and all(
        w.lower().startswith(("adapt", "inadapt")) for w in theme_words.get(REP, ["-"])
    ):
        # « les horaires de la CAF ne sont pas adaptés »: the hours are adapted, not my answer
        theme_words.pop(REP, None)
        strong.discard(REP)
    if still_not and "_duree_" in all_words and DEL in theme_words:
        theme_words.setdefault(PEC, []).extend(still_not)  # « toujours pas reçu après 4 mois »
        strong.add(PEC)
    if DEL in complained and any(_waits_for_contact(w) for w in theme_words.get(CON, ())):
        # waiting on the phone or months for an appointment is contact and delay (written rules)
        strong.add(CON)
    if strong:
        theme_words = {theme: words for theme, words in theme_words.items() if theme in strong}
    themes = tuple(
        ThemeTag(theme, tuple(theme_words[theme])) for theme in THEMES if theme in theme_words
    )
    return Tagging(themes, tone, tuple(tone_words))


def measure(
    cases: list[tuple[frozenset[str], str, Tagging]],
) -> dict[str, dict[str, float | int]]:
    """Precision and recall per theme and per tone, over (themes, tone, tagging) triples."""
    figures: dict[str, dict[str, float | int]] = {}
    for label in THEMES + tuple(f"tone:{t}" for t in TONES):
        true_pos = false_pos = false_neg = 0
        for themes, tone, tagging in cases:
            if label.startswith("tone:"):
                expected, found = tone == label[5:], tagging.tone == label[5:]
            else:
                expected, found = label in themes, label in tagging.theme_names
            true_pos += expected and found
            false_pos += found and not expected
            false_neg += expected and not found
        figures[label] = {
            "precision": round(true_pos / (true_pos + false_pos), 3)
            if true_pos + false_pos
            else 1.0,
            "recall": round(true_pos / (true_pos + false_neg), 3) if true_pos + false_neg else 1.0,
            "support": true_pos + false_neg,
        }
    return figures


@lru_cache(maxsize=1 << 15)
def _starting_on(word: str) -> tuple[_Compiled, ...]:
    """The entries whose first word matches `word`, longest first: a pure function of the word,
    remembered because verbatims share most of their words (« pas », « en », « attente »)."""
    return tuple(
        entry for entry in _BY_START.get(word[:2], ()) if _word_matches(entry.alternatives[0], word)
    )


def _match(content: list[tuple[str, str, bool]], index: int) -> _Compiled | None:
    for entry in _starting_on(content[index][0]):
        size = len(entry.alternatives)
        if size == 1:
            return entry
        if index + size > len(content):
            continue
        if all(
            _word_matches(options, content[index + k][0])
            for k, options in enumerate(entry.alternatives[1:], 1)
        ):
            return entry
    return None
