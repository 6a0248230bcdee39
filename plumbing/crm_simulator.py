"""A CRM simulator: realistic `contact closed` events for several sites, channels and motifs.

Used by `make demo` (so the figures move), by the tests and by the benchmarks.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.envelope import CloudEvent, new_event_id
from contracts.events import Channel, ContactClosed, RequestNature, SurveyChannel
from contracts.sites import site_clock
from contracts.topics import CONTACT_CLOSED

SITES = (
    ("urssaf-idf-montreuil", "Urssaf Île-de-France, accueil de Montreuil", "urssaf"),
    ("urssaf-paca-marseille", "Urssaf PACA, accueil de Marseille", "urssaf"),
    ("urssaf-guadeloupe", "Urssaf Guadeloupe, accueil des Abymes", "urssaf"),
)
CHANNELS = (
    (Channel.TELEPHONE, 55),
    (Channel.ACCUEIL_PHYSIQUE, 20),
    (Channel.COURRIEL, 15),
    (Channel.FORMULAIRE_EN_LIGNE, 10),
)
MOTIFS = (
    ("declaration", 35),
    ("recouvrement", 25),
    ("attestation", 20),
    ("creation", 10),
    ("autre", 10),
)
PROFILES = ("employeur", "independant", "particulier", "createur")


@dataclass
class CrmSimulator:
    seed: int = 0
    users: int = 5000
    email_share: float = 0.8

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def _weighted(self, pairs: tuple[tuple[object, int], ...]) -> object:
        values, weights = zip(*pairs, strict=True)
        return self.random.choices(values, weights)[0]

    def contact(
        self,
        *,
        site: tuple[str, str, str] | None = None,
        closed_at: datetime | None = None,
        user: int | None = None,
        motif: str | None = None,
    ) -> ContactClosed:
        site_id, site_name, network = site or self.random.choice(SITES)
        user_number = user if user is not None else self.random.randrange(self.users)
        by_email = self.random.random() < self.email_share
        return ContactClosed(
            contact_id=f"crm-{uuid.UUID(int=self.random.getrandbits(128)).hex[:16]}",
            closed_at=closed_at or self._local_now(site_id, network),
            site_id=site_id,
            site_name=site_name,
            network=network,
            channel=Channel(str(self._weighted(CHANNELS))),
            motif=motif or str(self._weighted(MOTIFS)),
            user_ref=f"usager-{user_number:06d}",
            profile=self.random.choice(PROFILES),
            request_nature=self.random.choice(list(RequestNature)),
            email=f"usager{user_number}@exemple.fr",
            mobile_phone=f"+3361{user_number:07d}",
            preferred_channel=SurveyChannel.EMAIL if by_email else SurveyChannel.SMS,
        )

    def _local_now(self, site_id: str, network: str) -> datetime:
        """A moment of the last ten minutes, as the site's CRM writes it: with its own offset
        (-04:00 in Guadeloupe), the site's clock by contracts.sites."""
        moment = datetime.now(UTC) - timedelta(seconds=self.random.randint(0, 600))
        return moment.astimezone(ZoneInfo(site_clock(site_id, network).timezone))

    @staticmethod
    def event(contact: ContactClosed) -> CloudEvent[ContactClosed]:
        return CloudEvent[ContactClosed](
            id=new_event_id(),
            source="/crm-simulator",
            type=CONTACT_CLOSED.type,
            time=contact.closed_at,
            subject=contact.site_id,
            data=contact,
        )

    def answers(self) -> dict[str, int | str]:
        """A plausible set of answers: mostly satisfied, a tail of detractors, skipped items."""
        mood = self.random.random()
        base = 9 if mood > 0.35 else (7 if mood > 0.15 else 3)

        def around(center: int, low: int, high: int) -> int:
            return max(low, min(high, center + self.random.randint(-2, 1)))

        answers: dict[str, int | str] = {
            "satisfaction_globale": around(base, 1, 10),
            "recommandation": around(base, 0, 10),
        }
        if self.random.random() < 0.8:
            answers["effort"] = around(6 if base > 5 else 3, 1, 7)
        if self.random.random() < 0.85:
            answers["plusieurs_contacts"] = (
                "non" if base > 5 else self.random.choice(["oui", "non"])
            )
        for theme in ("theme_clarte", "theme_delais", "theme_courtoisie", "theme_comprehension"):
            if self.random.random() < 0.6:
                answers[theme] = around(base, 1, 10)
        if self.random.random() < 0.2:
            answers["suggestion"] = self.random.choice(
                [
                    "Très bon accueil.",
                    "Délais trop longs.",
                    "Difficile de vous joindre par téléphone.",
                ]
            )
        if self.random.random() < 0.6:  # the consent item: only those who say oui are called back
            answers["recontact"] = "oui" if self.random.random() < 0.7 else "non"
        return answers
