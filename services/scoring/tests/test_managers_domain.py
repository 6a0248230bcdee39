"""The managers' mapping (issue #15), pure parts: validation of the admin API's input with its
French messages, the role name, the derived password and its SCRAM verifier, the weekly
e-mail's recipients."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import SecretStr
from scoring import managers
from scoring.managers import InvalidManager, manager_spec
from scoring.settings import ScoringSettings


def test_a_valid_body_is_normalised():
    spec = manager_spec({"email": "chef.site@exemple.fr", "sites": ["s2", "s1"]})
    assert spec == managers.ManagerSpec(email="chef.site@exemple.fr", scope="sites",
                                        sites=("s1", "s2"))  # fmt: skip
    assert manager_spec({"email": "r@exemple.fr", "scope": "network"}).sites == ()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "objet JSON attendu"),
        ({"email": "a@exemple.fr", "sites": ["s"], "password": "x"}, "champ(s) inconnu(s)"),
        ({"sites": ["s"]}, "adresse électronique invalide"),
        ({"email": "Nom <a@exemple.fr>", "sites": ["s"]}, "adresse électronique invalide"),
        ({"email": "a@exemple.fr, b@exemple.fr", "sites": ["s"]}, "adresse électronique"),
        ({"email": "a@exemple.fr\r\nBcc: x@y.fr", "sites": ["s"]}, "adresse électronique"),
        ({"email": "a@localhost", "sites": ["s"]}, "adresse électronique invalide"),
        ({"email": "a@exemple.fr", "scope": "tout", "sites": ["s"]}, "portée invalide"),
        ({"email": "a@exemple.fr"}, "au moins un site"),
        ({"email": "a@exemple.fr", "sites": "s1"}, "doit être une liste"),
        ({"email": "a@exemple.fr", "sites": [1]}, "doit être une liste"),
        ({"email": "a@exemple.fr", "scope": "network", "sites": ["s"]}, "ne prend pas de liste"),
        ({"email": "a@exemple.fr", "sites": ["bad site"]}, "identifiant de site invalide"),
        ({"email": "a@exemple.fr", "sites": ["s", "s"]}, "deux fois"),
        ({"email": "a@exemple.fr", "sites": [f"s{n}" for n in range(501)]}, "au plus 500"),
    ],
)
def test_bad_bodies_are_refused_with_a_clear_french_message(body, words):
    with pytest.raises(InvalidManager, match=words.replace("(", r"\(").replace(")", r"\)")):
        manager_spec(body)


@pytest.mark.parametrize("manager_id", ["dupont_m", "ab", "a" + "b" * 39])
def test_manager_ids_become_prefixed_roles(manager_id):
    assert managers.check_manager_id(manager_id) == manager_id
    assert managers.login_role(manager_id) == f"mgr_{manager_id}"


@pytest.mark.parametrize(
    "manager_id", ["a", "Dupont", "1abc", "a-b", "a b", "a" * 41, "postgres;drop", "é_t"]
)
def test_bad_manager_ids_are_refused(manager_id):
    with pytest.raises(InvalidManager, match="identifiant de gestionnaire invalide"):
        managers.check_manager_id(manager_id)


def test_the_password_is_derived_from_the_secret_and_the_role():
    one = managers.derive_password("secret", "mgr_a")
    assert one == managers.derive_password("secret", "mgr_a")
    assert one != managers.derive_password("secret", "mgr_b")
    assert one != managers.derive_password("other", "mgr_a")
    assert len(one) == 43 and "=" not in one


def test_the_scram_verifier_is_rfc_7677s():
    """RFC 7677's example exchange (user, password "pencil"): a server holding our verifier
    signs the exchange with the RFC's server signature, so the client accepts it."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = managers.scram_verifier("pencil", salt)
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    server_key = base64.b64decode(verifier.rsplit(":", 1)[1])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    )
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_weekly_recipients_are_the_mapped_managers_the_setting_only_as_fallback():
    mapped = {"a": ["m1@exemple.fr", "m2@exemple.fr"], "b": ["m2@exemple.fr"]}
    fallback = {"a": ["statique@exemple.fr"], "c": ["repli@exemple.fr"], "d": []}
    assert managers.report_recipients(mapped, fallback) == {
        "a": ["m1@exemple.fr", "m2@exemple.fr"],
        "b": ["m2@exemple.fr"],
        "c": ["repli@exemple.fr"],
    }


def test_sites_unknown_or_of_another_network_are_told_apart():
    known = {"a": "urssaf", "b": "msa"}
    assert managers.site_problems(["a", "b", "z"], known, "urssaf") == (["z"], ["b"])


def test_the_password_key_is_the_secret_a_dev_key_outside_production_and_none_in_production():
    assert managers.password_key(ScoringSettings(manager_password_key=SecretStr("s3"))) == "s3"
    assert managers.password_key(ScoringSettings()) == managers.DEV_PASSWORD_KEY
    production = ScoringSettings(environment="production", admin_issuer="https://id.example.org")
    assert managers.password_key(production) is None  # the API answers 503, nothing derived
