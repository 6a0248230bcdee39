import pytest
from pydantic import SecretStr, ValidationError

from plumbing.settings import ServiceSettings

pytestmark = pytest.mark.unit


class WithSecret(ServiceSettings):
    signing_key: SecretStr = SecretStr("dev-signing-key")


def test_development_defaults_are_fine_in_dev():
    assert WithSecret(environment="dev").signing_key.get_secret_value() == "dev-signing-key"


def test_production_refuses_a_development_secret_and_names_it():
    with pytest.raises(ValidationError, match="SIGNING_KEY"):
        WithSecret(environment="production")


def test_production_accepts_a_real_secret():
    settings = WithSecret(
        environment="production", signing_key=SecretStr("s3cr3t-from-vault"),
        admin_issuer="https://idp.example.gouv.fr/realms/enquetes",
    )  # fmt: skip
    assert settings.signing_key.get_secret_value() == "s3cr3t-from-vault"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("HTTP_PORT", "9123")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "kafka-1:9092"
    assert settings.http_port == 9123


@pytest.mark.parametrize("issuer", ["", "http://127.0.0.1/dev-issuer"])
def test_production_requires_an_explicit_admin_issuer(issuer):
    with pytest.raises(ValidationError, match="ADMIN_ISSUER"):
        WithSecret(
            environment="production", signing_key=SecretStr("s3cr3t-from-vault"),
            admin_issuer=issuer,
        )  # fmt: skip


def test_librdkafka_gets_the_same_connection_as_aiokafka():
    """scoring's rebuild reads with confluent-kafka: the broker, TLS and SASL login it is given
    are the ones the services' aiokafka clients use."""
    settings = ServiceSettings(
        kafka_bootstrap_servers="kafka-1:9093,kafka-2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="scoring",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    aiokafka = settings.kafka_client_options()
    assert settings.librdkafka_options() == {
        "bootstrap.servers": aiokafka["bootstrap_servers"],
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "probe",  # the system's CAs, as ssl.create_default_context
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "scoring",
        "sasl.password": "s3cret",
    }
    plain = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9092").librdkafka_options()
    assert plain == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
