"""The Helm chart: lint, render, validate every manifest, and keep it true to the code.

Helm runs in-process through helm-python-sdk (Helm's Go library in a wheel; no helm binary), and
each rendered manifest is validated by kubernetes-validate in strict mode (unknown fields are
errors) against the Kubernetes version below. The Strimzi and Prometheus Operator resources,
which kubernetes-validate has no schema for, are checked against small schemas of their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from annotated_types import Le
from publication.settings import PublicationSettings
from scoring.settings import ScoringSettings

from contracts.topics import TOPICS, all_topic_names

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / "deploy" / "helm"
CHART = HELM_DIR / "enquetes"
PRODUCTION_VALUES = CHART / "values-production.yaml"
KUBERNETES_VERSION = "1.37.0"  # the newest kubernetes-validate ships; the chart needs >= 1.27
OLDEST_KUBERNETES_VERSION = "1.27.0"  # Chart.yaml kubeVersion
RELEASE = "enquetes"
NAMESPACE = "enquetes"
PUBLIC_SERVICES = {"responses", "publication"}
PER_SERVICE_KINDS = {
    "Deployment",
    "Service",
    "ServiceAccount",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
SHARED_ENV = {
    "ENVIRONMENT",
    "LOG_LEVEL",
    "HTTP_HOST",
    "HTTP_PORT",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "ADMIN_AUDIENCE",
}
WEEKLY_REPORT = "scoring-weekly-report"  # component label of the weekly report's resources
WEEKLY_REPORT_TEMPLATE = "enquetes/templates/weekly-report.yaml"
SSE_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "300",
}

# Minimal strict schemas for the custom resources the chart renders.
KAFKA_TOPIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"enum": ["kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"]},
        "kind": {"const": "KafkaTopic"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
            },
        },
        "spec": {
            "type": "object",
            "required": ["topicName", "partitions", "replicas", "config"],
            "additionalProperties": False,
            "properties": {
                "topicName": {"type": "string"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object"},
            },
        },
    },
}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object"},
                "selector": {"type": "object", "required": ["matchLabels"]},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"const": "/metrics"},
                            "interval": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "interval": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string"},
                                        "for": {"type": "string"},
                                        "labels": {"type": "object"},
                                        "annotations": {"type": "object"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
KAFKA_USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"enum": ["kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"]},
        "kind": {"const": "KafkaUser"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
            },
        },
        "spec": {
            "type": "object",
            "required": ["authentication", "authorization"],
            "additionalProperties": False,
            "properties": {
                "authentication": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"type": {"enum": ["scram-sha-512", "tls", "tls-external"]}},
                },
                "authorization": {
                    "type": "object",
                    "required": ["type", "acls"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "simple"},
                        "acls": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["resource", "operations"],
                                "additionalProperties": False,
                                "properties": {
                                    "resource": {
                                        "type": "object",
                                        "required": ["type", "name", "patternType"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "type": {"enum": ["topic", "group", "cluster"]},
                                            "name": {"type": "string"},
                                            "patternType": {"enum": ["literal", "prefix"]},
                                        },
                                    },
                                    "operations": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {
                                            "enum": ["Read", "Write", "Create", "Delete",
                                                     "Alter", "Describe", "DescribeConfigs",
                                                     "AlterConfigs", "IdempotentWrite", "All"]
                                        },
                                    },
                                    "host": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}  # fmt: skip
CUSTOM_SCHEMAS = {
    "KafkaTopic": KAFKA_TOPIC_SCHEMA,
    "ServiceMonitor": SERVICE_MONITOR_SCHEMA,
    "PrometheusRule": PROMETHEUS_RULE_SCHEMA,
    "KafkaUser": KAFKA_USER_SCHEMA,
}


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, HELM_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _production_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(PRODUCTION_VALUES.read_text(encoding="utf-8"))
    return values


def _render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    resources: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("_source", path)
                resources.append(document)
    return resources


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "_source"}


def _of_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [resource for resource in resources if resource["kind"] == kind]


def _component(resource: dict[str, Any]) -> str:
    component: str = resource["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        return chart.values


@pytest.fixture(scope="module")
def default_resources() -> list[dict[str, Any]]:
    return _render(None)


@pytest.fixture(scope="module")
def production_resources() -> list[dict[str, Any]]:
    return _render(_production_values())


@pytest.fixture(scope="module", params=["default", "production"])
def rendered(
    request: pytest.FixtureRequest,
    default_resources: list[dict[str, Any]],
    production_resources: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return default_resources if request.param == "default" else production_resources


# --- helm lint and helm template ----------------------------------------------------------------


@pytest.mark.parametrize("values_name", ["default", "production"])
def test_helm_lint_is_clean(values_name: str) -> None:
    values = _production_values() if values_name == "production" else None
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert report["errors"] == [], report["errors"]
    assert problems == [], problems


def test_every_rendered_manifest_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    errors: list[str] = []
    for resource in rendered:
        name = f"{resource['_source']}: {resource['kind']}/{resource['metadata']['name']}"
        if resource["kind"] in CUSTOM_SCHEMAS:
            try:
                jsonschema.validate(_strip(resource), CUSTOM_SCHEMAS[resource["kind"]])
            except jsonschema.ValidationError as error:
                errors.append(f"{name}: {error.message}")
            continue
        for version in (KUBERNETES_VERSION, OLDEST_KUBERNETES_VERSION):
            try:
                kubernetes_validate.validate(_strip(resource), version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                errors.append(f"{name} against {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{name}: {error.message}")
    assert errors == [], "\n".join(errors)


def test_kubernetes_validate_knows_the_version() -> None:
    assert kubernetes_validate.latest_version() >= "1.37", kubernetes_validate.all_versions()


def test_validation_catches_an_unknown_field(default_resources: list[dict[str, Any]]) -> None:
    """Strict mode is on: a typo in a template would not pass."""
    deployment = _strip(_of_kind(default_resources, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- values.schema.json -----------------------------------------------------------------------


def test_schema_rejects_replicas_as_a_string_with_a_clear_message() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.render({"services": {"scoring": {"replicas": "3"}}}, name=RELEASE)
    message = str(caught.value)
    assert "/services/scoring/replicas" in message
    assert "got string, want integer" in message


def test_lint_reports_a_wrong_value() -> None:
    report = helm.lint(CHART, {"services": {"scoring": {"replicas": "3"}}})
    assert any("/services/scoring/replicas" in error for error in report["errors"]), report


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"environment": "prod"}, "/environment"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"kafka": {"securityProtocol": "SASL_SSL"}}, "/kafka/sasl/mechanism"),
        ({"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers"),
        ({"services": {"scoring": {"port": 80}}}, "/services/scoring/port"),
        ({"services": {"scoring": {"module": "Scoring-Service"}}}, "/services/scoring/module"),
        ({"services": {"scoring": {"secretEnv": {"TOKEN": {"name": "s"}}}}}, "key"),
        ({"services": {"scoring": {"replicaCount": 2}}}, "replicaCount"),
        ({"ingress": {"scoring": {"enabled": True}}}, "scoring"),
        ({"ingress": {"publication": {"optOutPath": "/o"}}}, "optOutPath"),
        ({"ingress": {"responses": {"host": "Enquete.example.org"}}}, "/ingress/responses/host"),
        ({"containerSecurityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRoot"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
        ({"postgresql": {"existingSecret": {"name": ""}}}, "/postgresql/existingSecret/name"),
        ({"weeklyReport": {"schedule": 7}}, "/weeklyReport/schedule"),
        ({"weeklyReport": {"schedule": ["0", "7", "*", "*", "1"]}}, "/weeklyReport/schedule"),
        ({"weeklyReport": {"schedule": "0 7 * *"}}, "/weeklyReport/schedule"),
        ({"weeklyReport": {"schedule": "CRON_TZ=UTC 0 7 * * 1"}}, "/weeklyReport/schedule"),
        ({"weeklyReport": {"timeZone": "Paris time"}}, "/weeklyReport/timeZone"),
        ({"weeklyReport": {"enabled": "yes"}}, "/weeklyReport/enabled"),
        ({"weeklyReport": {"startingDeadlineSeconds": 5}}, "/weeklyReport/startingDeadline"),
        ({"weeklyReport": {"backoffLimit": -1}}, "/weeklyReport/backoffLimit"),
        ({"weeklyReport": {"concurrencyPolicy": "Allow"}}, "concurrencyPolicy"),
        ({"weeklyReport": {"recipients": {"site": "a@example.org"}}}, "/weeklyReport/recipients"),
        ({"weeklyReport": {"recipients": {"site": ["nobody"]}}}, "/weeklyReport/recipients"),
        ({"weeklyReport": {"secretEnv": {"SMTP_URL": {"name": "s"}}}}, "key"),
    ],
)
def test_schema_rejects_wrong_values(values: dict[str, Any], expected: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(chart.merge_values(values))
    assert expected in str(caught.value)


def test_templates_refuse_the_latest_tag() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render({"image": {"tag": "latest"}}, name=RELEASE)
    assert "not latest" in str(caught.value)


def test_every_value_is_documented() -> None:
    """Each value has a `## @param` line, each `@param` names a value, and the README lists it."""
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    documented = re.findall(r"^\s*## @param (\S+) \S", text, flags=re.MULTILINE)
    values = yaml.safe_load(text)

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            found: list[str] = []
            for key, child in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                found += [path] if path in documented else leaves(child, path)
            return found
        return [prefix]

    def exists(path: str) -> bool:
        node: Any = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    assert len(documented) == len(set(documented)), "a value is documented twice"
    assert [path for path in leaves(values, "") if path not in documented] == []
    assert [path for path in documented if not exists(path)] == []
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert [path for path in documented if f"`{path}`" not in readme] == []


# --- what the chart renders ---------------------------------------------------------------------


def test_each_service_gets_its_resources_from_one_range(
    rendered: list[dict[str, Any]], chart_values: dict[str, Any]
) -> None:
    services = set(chart_values["services"])
    for kind in PER_SERVICE_KINDS:
        resources = [
            resource
            for resource in _of_kind(rendered, kind)
            if resource["_source"] != WEEKLY_REPORT_TEMPLATE
        ]
        assert {_component(resource) for resource in resources} == services, kind
        assert {resource["_source"] for resource in resources} == {
            "enquetes/templates/services.yaml"
        }


def test_deployments_are_hardened_probed_and_migrate_first(
    rendered: list[dict[str, Any]], chart_values: dict[str, Any]
) -> None:
    for deployment in _of_kind(rendered, "Deployment"):
        name = _component(deployment)
        module = chart_values["services"][name]["module"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (init,) = pod["initContainers"]
        (container,) = pod["containers"]
        assert init["command"] == ["python", "-m", module, "migrate"]
        assert container["command"] == ["python", "-m", module, "serve"]
        for each in (init, container):
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["runAsNonRoot"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in each["volumeMounts"]
            assert each["resources"]["limits"]["memory"]
            env = {variable["name"]: variable for variable in each["env"]}
            assert set(env) >= SHARED_ENV
            assert env["HTTP_HOST"]["value"] == "0.0.0.0"
            assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert str(ports["http"]) == {v["name"]: v for v in container["env"]}["HTTP_PORT"]["value"]


def test_secrets_come_from_existing_secrets(production_resources: list[dict[str, Any]]) -> None:
    envs = {
        _component(deployment): {
            variable["name"]: variable
            for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for deployment in _of_kind(production_resources, "Deployment")
    }
    secret_names = {
        "survey-dispatch": {"PSEUDONYM_KEY", "SMS_API_TOKEN", "KAFKA_SASL_PASSWORD"},
        "responses": {"CSRF_SECRET", "KAFKA_SASL_PASSWORD"},
        "scoring": {"KAFKA_SASL_PASSWORD"},
        "publication": {"KAFKA_SASL_PASSWORD"},
    }
    for service, names in secret_names.items():
        for name in names | {"DATABASE_URL"}:
            assert "value" not in envs[service][name], (service, name)
            assert envs[service][name]["valueFrom"]["secretKeyRef"]["name"], (service, name)
        assert envs[service]["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert envs[service]["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        assert envs[service]["SSL_CERT_FILE"]["value"].startswith("/etc/enquetes/kafka-ca/")
    assert not _of_kind(production_resources, "Secret"), "the chart never holds a secret"


def test_autoscaled_deployments_leave_replicas_to_the_hpa(
    production_resources: list[dict[str, Any]],
) -> None:
    autoscaled = {
        _component(hpa) for hpa in _of_kind(production_resources, "HorizontalPodAutoscaler")
    }
    assert autoscaled == {"responses", "publication"}
    for deployment in _of_kind(production_resources, "Deployment"):
        assert ("replicas" in deployment["spec"]) == (_component(deployment) not in autoscaled)


def test_each_deployment_pauses_before_sigterm_and_gets_a_grace_longer_than_its_drain(
    rendered: list[dict[str, Any]], chart_values: dict[str, Any]
) -> None:
    """A preStop pause lets the endpoints drop the pod before SIGTERM (no request reaches a
    server that stopped accepting: the chaos run's drain saw those cut), and the grace period
    outlasts the pause plus uvicorn's 10 s drain and the consumers' last commit."""
    deployments = _of_kind(rendered, "Deployment")
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pause = int(command[1])
        assert 2 <= pause <= 15, pause
        assert pod["terminationGracePeriodSeconds"] > pause + 10


def test_a_grace_period_shorter_than_the_pause_and_drain_is_refused() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render({"terminationGracePeriodSeconds": 12, "preStopSleepSeconds": 5}, name=RELEASE)
    assert "must be greater than preStopSleepSeconds (5) plus the 10 s drain" in str(caught.value)


def test_only_responses_and_publication_are_exposed(
    production_resources: list[dict[str, Any]], default_resources: list[dict[str, Any]]
) -> None:
    assert _of_kind(default_resources, "Ingress") == []
    ingresses = _of_kind(production_resources, "Ingress")
    assert {_component(ingress) for ingress in ingresses} == PUBLIC_SERVICES
    backends = {}
    for ingress in ingresses:
        assert ingress["spec"]["tls"][0]["secretName"]
        for path in ingress["spec"]["rules"][0]["http"]["paths"]:
            backends[(_component(ingress), path["path"])] = path["backend"]["service"]
    dispatch_name = f"{RELEASE}-survey-dispatch"
    assert {backend["port"]["name"] for backend in backends.values()} == {"http"}
    for (component, _), backend in backends.items():
        assert backend["name"] in {f"{RELEASE}-{component}", dispatch_name}
    dispatch = {path for path, backend in backends.items() if backend["name"] == dispatch_name}
    # survey-dispatch serves the opt-out links and the SMS webhook, on the responses host.
    assert dispatch == {("responses", "/o"), ("responses", "/v1/sms/inbound")}
    assert ("responses", "/") not in backends and ("publication", "/") not in backends
    for policy in _of_kind(production_resources, "NetworkPolicy"):
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        from_ingress_controller = any(
            peer.get("namespaceSelector", {})
            .get("matchLabels", {})
            .get("kubernetes.io/metadata.name")
            == "ingress-nginx"
            for peer in peers
        )
        reachable = PUBLIC_SERVICES | {"survey-dispatch"}
        assert from_ingress_controller == (_component(policy) in reachable)
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_service_monitor_is_optional(
    production_resources: list[dict[str, Any]], default_resources: list[dict[str, Any]]
) -> None:
    assert _of_kind(default_resources, "ServiceMonitor") == []
    (monitor,) = _of_kind(production_resources, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    service_labels = _of_kind(production_resources, "Service")[0]["metadata"]["labels"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service_labels[key] == value


# --- what the Ingresses expose --------------------------------------------------------------------

# Every route of the four apps that the public may reach; any other (metrics, readiness, OpenAPI,
# admin, scoring's manager API) must stay inside the cluster.
PUBLIC_ROUTES = {
    "responses": {
        "/s/{token}", "/v1/responses/{token}", "/static/app/{path}", "/static/dsfr/{path}",
        "/donnees-personnelles", "/mentions-legales", "/accessibilite",
    },
    "publication": {
        "/v1/sites/{site_id}/indicators", "/v1/sites/{site_id}/events", "/v1/indicators",
        "/v1/open-data/export-indicateurs.csv", "/display/{site_id}", "/display/sw.js",
        "/static/dsfr/{path}", "/static/publication/{path}",
    },
    "survey-dispatch": {"/o/{token}", "/o/static/optout.css", "/v1/sms/inbound"},
    "scoring": set(),
}  # fmt: skip
NEVER_PUBLIC = {"/metrics", "/readyz", "/healthz", "/openapi.json", "/docs", "/redoc"}


def _app_routes(service: str) -> set[str]:
    """The route paths of a service's real FastAPI app (mounts as `<prefix>/{path}`)."""
    modules = {
        "responses": ("survey_responses.app", "survey_responses.settings", "ResponsesSettings"),
        "publication": ("publication.app", "publication.settings", "PublicationSettings"),
        "scoring": ("scoring.app", "scoring.settings", "ScoringSettings"),
        "survey-dispatch": ("survey_dispatch.app", "survey_dispatch.settings", None),
    }
    app_module, settings_module, settings_name = modules[service]
    settings_mod = importlib.import_module(settings_module)
    if settings_name is None:
        (settings_name,) = [
            name
            for name in vars(settings_mod)
            if name.endswith("Settings") and name != "ServiceSettings"
        ]
    app = importlib.import_module(app_module).create_app(getattr(settings_mod, settings_name)())

    def walk(routes: Any) -> set[str]:
        found: set[str] = set()
        for route in routes:
            path = getattr(route, "path", None)
            if path is not None:
                found.add(f"{path}/{{path}}" if type(route).__name__ == "Mount" else path)
            elif getattr(route, "original_router", None) is not None:  # FastAPI include_router
                found |= walk(route.original_router.routes)
        return found

    return walk(app.routes)


def _routed(path: str, rules: list[dict[str, Any]]) -> bool:
    """Kubernetes Ingress matching: Exact is the whole path, Prefix whole path elements."""
    for rule in rules:
        if rule["pathType"] == "Exact" and path == rule["path"]:
            return True
        prefix = rule["path"].rstrip("/")
        if rule["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def test_public_ingresses_expose_exactly_the_public_routes_of_the_real_apps(
    production_resources: list[dict[str, Any]],
) -> None:
    """`/` was routed, so /metrics, /docs, /openapi.json and the admin API were public."""
    rules: dict[str, list[dict[str, Any]]] = {name: [] for name in PUBLIC_ROUTES}
    for ingress in _of_kind(production_resources, "Ingress"):
        for path in ingress["spec"]["rules"][0]["http"]["paths"]:
            service = path["backend"]["service"]["name"].removeprefix(f"{RELEASE}-")
            rules[service].append(path)
    for service, public in PUBLIC_ROUTES.items():
        routes = _app_routes(service)
        assert public <= routes, f"{service} has no route {sorted(public - routes)}"
        sample = {route: route.replace("{path}", "x/y.css") for route in routes}
        sample = {
            route: re.sub(r"\{[a-z_]+\}", "abc", concrete) for route, concrete in sample.items()
        }
        exposed = {route for route in routes if _routed(sample[route], rules[service])}
        assert exposed == public, service
        for private in NEVER_PUBLIC | {"/admin/v1/me", "/admin/v1/networks/x/rules"}:
            assert not _routed(private, rules[service]), (service, private)
        for rule in rules[service]:  # no path routed to nothing
            assert any(_routed(sample[route], [rule]) for route in routes), (service, rule)


def test_the_ingress_paths_cannot_be_set_to_a_private_route() -> None:
    for path in ("/", "/metrics", "/admin", "/admin/v1", "/openapi.json", "/docs"):
        values = {"ingress": {"publication": {"paths": [{"path": path, "pathType": "Prefix"}]}}}
        with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as caught:
            chart.validate_schema(chart.merge_values(values))
        assert "/ingress/publication/paths/0/path" in str(caught.value), path


def test_trusted_proxies_reach_responses_and_publication_as_their_settings_read_them(
    production_resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _production_values()["ingress"]["trustedProxies"]
    for deployment in _of_kind(production_resources, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = _env(container)
        if _component(deployment) not in {"responses", "publication"}:
            assert "TRUSTED_PROXIES" not in env
            continue
        assert env["TRUSTED_PROXIES"]["value"] == ",".join(values)
    monkeypatch.setenv("TRUSTED_PROXIES", ",".join(values))
    assert [str(n) for n in PublicationSettings().trusted_proxies] == values


def test_an_ingress_without_trusted_proxies_is_refused() -> None:
    """Without them every user would share the ingress's address: one rate-limit bucket, and
    four event streams for every screen of the country."""
    values = _production_values()
    values["ingress"]["trustedProxies"] = []
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE)
    assert "ingress.trustedProxies is empty" in str(caught.value)


# --- the chart and the code agree ---------------------------------------------------------------


def test_every_chart_service_is_a_service_package(chart_values: dict[str, Any]) -> None:
    directories = {path.name for path in (REPO / "services").iterdir() if path.is_dir()}
    assert set(chart_values["services"]) == directories
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for name, service in chart_values["services"].items():
        package = REPO / "services" / name / service["module"]
        assert (package / "__init__.py").is_file(), package
        assert (package / "__main__.py").is_file(), f"python -m {service['module']} needs it"
        assert (package / "migrations").is_dir(), f"{package} has no migrations to run"
        assert f'"services/{name}/{service["module"]}"' in pyproject, "not in the wheel"


def test_topic_file_is_generated_from_the_registry() -> None:
    generate_topics = _load_script("generate_topics")
    assert generate_topics.main(["--check"]) == 0, "run deploy/helm/generate_topics.py"


def test_kafka_topics_match_the_contracts_registry(
    production_resources: list[dict[str, Any]], default_resources: list[dict[str, Any]]
) -> None:
    assert _of_kind(default_resources, "KafkaTopic") == []
    rendered = {
        topic["spec"]["topicName"]: topic for topic in _of_kind(production_resources, "KafkaTopic")
    }
    assert sorted(rendered) == sorted(all_topic_names())
    for registered in TOPICS:
        topic = rendered[registered.name]
        config = topic["spec"]["config"]
        assert topic["spec"]["partitions"] == registered.partitions, registered.name
        assert ("compact" in config["cleanup.policy"]) == registered.compacted, registered.name
        expected_retention = -1 if registered.retention_ms is None else registered.retention_ms
        assert config["retention.ms"] == expected_retention, registered.name
        dlq = rendered[registered.dlq_name]
        assert dlq["spec"]["partitions"] == 1
        assert dlq["spec"]["config"]["cleanup.policy"] == "delete"
        expected_dlq = -1 if registered.dlq_retention_ms is None else registered.dlq_retention_ms
        assert dlq["spec"]["config"]["retention.ms"] == expected_dlq, registered.dlq_name
    for topic in rendered.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "enquetes"
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2


def test_personal_data_topics_and_their_dlq_are_kept_three_days(
    production_resources: list[dict[str, Any]],
) -> None:
    """A contact point (e-mail, phone, CRM user reference) outlives no topic by more than 3 days:
    neither the CRM's topic nor its dead letters, which once kept them 30 days."""
    three_days = 3 * 24 * 3600 * 1000
    rendered = {
        topic["spec"]["topicName"]: topic["spec"]["config"]
        for topic in _of_kind(production_resources, "KafkaTopic")
    }
    personal = [topic for topic in TOPICS if topic.personal_data]
    assert [topic.name for topic in personal] == ["crm.contact.closed.v1"]
    for topic in personal:
        for name in (topic.name, topic.dlq_name):
            assert 0 < rendered[name]["retention.ms"] <= three_days, name
            assert rendered[name]["cleanup.policy"] == "delete", name
    # The pseudonymous contact stream scoring reads instead, and its dead letters, are there too.
    assert {"survey.contact.v1", "survey.contact.v1.dlq"} <= set(rendered)


def test_dashboards_are_in_sync_and_rendered_for_the_grafana_sidecar(
    rendered: list[dict[str, Any]],
) -> None:
    sync_dashboards = _load_script("sync_dashboards")
    assert sync_dashboards.main(["--check"]) == 0, "run deploy/helm/sync_dashboards.py"
    files = sorted(path.name for path in (CHART / "dashboards").glob("*.json"))
    config_maps = [
        config_map
        for config_map in _of_kind(rendered, "ConfigMap")
        if config_map["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert sorted(name for cm in config_maps for name in cm["data"]) == files
    for config_map in config_maps:
        for content in config_map["data"].values():
            assert isinstance(json.loads(content), dict)


def test_a_dashboard_becomes_a_labelled_config_map(tmp_path: Path) -> None:
    """A dashboard file dropped in the chart becomes its own labelled ConfigMap."""
    chart = tmp_path / "enquetes"
    shutil.copytree(CHART, chart)
    board = {"title": "Satisfaction par site", "panels": [], "schemaVersion": 39}
    (chart / "dashboards" / "Site_Overview.json").write_text(json.dumps(board), encoding="utf-8")
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(
            {"grafanaDashboards": {"namespace": "monitoring"}}, name=RELEASE, namespace=NAMESPACE
        )
    (config_map,) = [
        document
        for document in yaml.safe_load_all(manifests["enquetes/templates/grafana-dashboards.yaml"])
        if document and "Site_Overview.json" in document["data"]
    ]
    kubernetes_validate.validate(config_map, KUBERNETES_VERSION, strict=True)
    assert config_map["metadata"]["name"] == "enquetes-dashboard-site-overview"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["Site_Overview.json"]) == board


def test_a_disabled_service_renders_nothing() -> None:
    resources = _render({"services": {"scoring": {"enabled": False}}})
    assert "scoring" not in {
        resource["metadata"]["labels"].get("app.kubernetes.io/component") for resource in resources
    }
    assert len(_of_kind(resources, "Deployment")) == 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {
                "services": {"responses": {"enabled": False}},
                "ingress": {"responses": {"enabled": True}},
            },
            "services.responses is not enabled",
        ),
        (
            {
                "services": {
                    "scoring": {
                        "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}
                    }
                }
            },
            "minReplicas (5) is greater than maxReplicas (2)",
        ),
        (
            {"kafka": {"sasl": {"mechanism": "PLAIN", "username": "u"}}},
            "kafka.sasl.passwordSecret.name is required",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_message(values: dict[str, Any], expected: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE)
    assert expected in str(caught.value)


# --- the weekly report ----------------------------------------------------------------------------


def _weekly_report(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (cron_job,) = _of_kind(resources, "CronJob")
    return cron_job


def _scoring_deployment(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in _of_kind(resources, "Deployment") if _component(d) == "scoring"]
    return deployment


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container["env"]}


def test_weekly_report_runs_every_monday_morning_in_paris(rendered: list[dict[str, Any]]) -> None:
    cron_job = _weekly_report(rendered)
    assert cron_job["_source"] == WEEKLY_REPORT_TEMPLATE
    assert cron_job["metadata"]["name"] == f"{RELEASE}-scoring-weekly-report"
    spec = cron_job["spec"]
    assert spec["schedule"] == "0 7 * * 1"
    assert spec["timeZone"] == "Europe/Paris"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["suspend"] is False
    assert 600 <= spec["startingDeadlineSeconds"] <= 24 * 3600
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert 0 <= job["backoffLimit"] <= 3
    assert job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "scoring", "weekly-report"]
    main = (REPO / "services" / "scoring" / "scoring" / "__main__.py").read_text(encoding="utf-8")
    assert '"weekly-report": weekly_report.command' in main, "scoring has no such command"


def test_weekly_report_runs_like_the_scoring_deployment(rendered: list[dict[str, Any]]) -> None:
    """Same image, environment (DATABASE_URL...), security context and volumes as scoring."""
    pod = _weekly_report(rendered)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    scoring_pod = _scoring_deployment(rendered)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (scoring,) = scoring_pod["containers"]
    for key in ("image", "imagePullPolicy", "securityContext", "volumeMounts", "resources"):
        assert container[key] == scoring[key], key
    for key in ("securityContext", "volumes", "serviceAccountName", "imagePullSecrets"):
        assert pod.get(key) == scoring_pod.get(key), key
    assert pod["automountServiceAccountToken"] is False
    env, scoring_env = _env(container), _env(scoring)
    assert set(env) >= SHARED_ENV
    for name, variable in scoring_env.items():
        if name not in {"SMTP_URL", "MAIL_FROM_ADDRESS", "WEEKLY_REPORT_BOARD_URL"}:
            assert env[name] == variable, name
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "enquetes-db-app",
        "key": "uri",
    }
    assert "SMTP_URL" in env
    assert "WEEKLY_REPORT_RECIPIENTS" in env


def test_weekly_report_pods_stay_out_of_the_scoring_service(
    rendered: list[dict[str, Any]],
) -> None:
    """Labelled `component: scoring`, they would get HTTP traffic and count in scoring's PDB."""
    labels = _weekly_report(rendered)["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
        "labels"
    ]
    assert labels["app.kubernetes.io/component"] == WEEKLY_REPORT
    selectors = [service["spec"]["selector"] for service in _of_kind(rendered, "Service")]
    selectors += [
        pdb["spec"]["selector"]["matchLabels"] for pdb in _of_kind(rendered, "PodDisruptionBudget")
    ]
    for selector in selectors:
        assert not all(labels.get(key) == value for key, value in selector.items()), selector
    (policy,) = [p for p in _of_kind(rendered, "NetworkPolicy") if _component(p) == WEEKLY_REPORT]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["ingress"] == []
    egress_ports = {
        port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])
    }
    assert {53, 5432, 25, 465, 587} <= egress_ports


def test_weekly_report_settings_are_what_scoring_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    recipients = {"urssaf-idf-montreuil": ["accueil@example.org", "chef@example.org"]}
    resources = _render(
        {
            # Production settings accept admin tokens only from an issuer named explicitly.
            "admin": {"issuer": "https://auth.example.org/realms/agents"},
            "weeklyReport": {
                "recipients": recipients,
                "mailFrom": "resultats@example.org",
                "boardUrl": "https://grafana.example.org/d/weekly/",
                "env": {"WEEKLY_REPORT_WEEK": "2026-W47"},
            },
        }
    )
    (container,) = _weekly_report(resources)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    for name, variable in _env(container).items():
        if "value" in variable:
            monkeypatch.setenv(name, variable["value"])
    settings = ScoringSettings()
    assert settings.weekly_report_recipients == recipients
    assert settings.smtp_url == "smtp://smtp-relay.mail.svc:25"
    assert settings.mail_from_address == "resultats@example.org"
    assert settings.weekly_report_board_url == "https://grafana.example.org/d/weekly/"
    assert settings.weekly_report_week == "2026-W47"


def test_weekly_report_smtp_url_with_credentials_comes_from_a_secret(
    production_resources: list[dict[str, Any]],
) -> None:
    (container,) = _weekly_report(production_resources)["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"]
    names = [variable["name"] for variable in container["env"]]
    assert len(names) == len(set(names)), "an environment variable is set twice"
    smtp_url = _env(container)["SMTP_URL"]
    assert "value" not in smtp_url
    assert smtp_url["valueFrom"]["secretKeyRef"] == {"name": "enquetes-smtp", "key": "url"}


@pytest.mark.parametrize(
    "values",
    [
        {"weeklyReport": {"enabled": False}},
        {"services": {"scoring": {"enabled": False}}},
    ],
    ids=["weeklyReport-disabled", "scoring-disabled"],
)
def test_weekly_report_can_be_turned_off(values: dict[str, Any]) -> None:
    resources = _render(values)
    assert _of_kind(resources, "CronJob") == []
    assert [r for r in resources if r["_source"] == WEEKLY_REPORT_TEMPLATE] == []
    assert WEEKLY_REPORT not in {
        resource["metadata"]["labels"].get("app.kubernetes.io/component") for resource in resources
    }


# --- server-sent events through the publication Ingress ------------------------------------------


def _ingress(resources: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (ingress,) = [i for i in _of_kind(resources, "Ingress") if _component(i) == name]
    return ingress


def test_publication_ingress_does_not_buffer_or_cut_server_sent_events(
    production_resources: list[dict[str, Any]],
) -> None:
    annotations = _ingress(production_resources, "publication")["metadata"]["annotations"]
    assert annotations.items() >= SSE_ANNOTATIONS.items()
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"  # still merged
    field = PublicationSettings.model_fields["sse_heartbeat_seconds"]
    longest_heartbeat = next(rule.le for rule in field.metadata if isinstance(rule, Le))
    timeout = int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert timeout >= 2 * longest_heartbeat, "nginx would close a stream between two pings"
    responses = _ingress(production_resources, "responses")["metadata"]["annotations"]
    assert "nginx.ingress.kubernetes.io/proxy-buffering" not in responses


def test_a_survey_links_get_and_post_reach_the_same_responses_replica(
    production_resources: list[dict[str, Any]],
) -> None:
    annotations = _ingress(production_resources, "responses")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$uri"


def test_publication_sse_annotations_can_be_overridden() -> None:
    timeout = "nginx.ingress.kubernetes.io/proxy-read-timeout"
    values = _production_values()
    values["ingress"]["publication"]["annotations"] = {
        timeout: "3600",
        "nginx.ingress.kubernetes.io/proxy-buffering": None,
    }
    annotations = _ingress(_render(values), "publication")["metadata"]["annotations"]
    assert annotations[timeout] == "3600"
    assert "nginx.ingress.kubernetes.io/proxy-buffering" not in annotations


# --- documentation ------------------------------------------------------------------------------


def test_docs_say_publication_needs_a_session_mode_connection() -> None:
    with helm.Chart.load(CHART) as chart:
        notes = chart.render(None, name=RELEASE, namespace=NAMESPACE)[
            "enquetes/templates/NOTES.txt"
        ]
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    for text in (" ".join(notes.split()), " ".join(readme.split())):
        assert "NOTIFY" in text
        assert "session mode" in text
        assert (
            "PgBouncer in transaction mode" in text or "PgBouncer in **transaction** mode" in text
        )


def test_survey_dispatch_reads_its_sms_inbound_token_from_a_secret(rendered):
    """Production refuses the development SMS_INBOUND_TOKEN: the chart must pass a real one."""
    (deployment,) = [
        resource
        for resource in _of_kind(rendered, "Deployment")
        if _component(resource) == "survey-dispatch"
    ]
    env = {
        item["name"]: item
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SMS_INBOUND_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "sms-inbound-token"
    assert env["ADMIN_ISSUER"]["value"]


def test_production_without_an_admin_issuer_is_refused_at_render():
    values = _production_values()
    values["admin"]["issuer"] = ""
    with pytest.raises(Exception, match=r"admin\.issuer is required"):
        _render(values)


# --- alert rules, Kafka users and `helm test` (issue #16) ---------------------------------------

RULES = REPO / "deploy" / "prometheus" / "rules.yml"
SERVICE_PACKAGES = {
    "survey-dispatch": "survey_dispatch",
    "responses": "survey_responses",
    "scoring": "scoring",
    "publication": "publication",
}


def test_operation_files_are_generated_from_the_registry_and_the_rules() -> None:
    generate_operations = _load_script("generate_operations")
    assert generate_operations.main(["--check"]) == 0, "run deploy/helm/generate_operations.py"


def test_the_alert_rules_ship_as_a_prometheus_rule(
    production_resources: list[dict[str, Any]], default_resources: list[dict[str, Any]]
) -> None:
    assert _of_kind(default_resources, "PrometheusRule") == []
    (rule,) = _of_kind(production_resources, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (monitor,) = _of_kind(production_resources, "ServiceMonitor")
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"  # the rules' `job`


def _acls(user: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        key = (acl["resource"]["type"], acl["resource"]["name"])
        found.setdefault(key, set()).update(acl["operations"])
    return found


def _expected_access(service: str) -> dict[tuple[str, str], set[str]]:
    """What the registry grants a service, and nothing else."""
    expected: dict[tuple[str, str], set[str]] = {}

    def grant(kind: str, name: str, operation: str) -> None:
        expected.setdefault((kind, name), set()).update({"Describe", operation})

    reads = {t.name for t in TOPICS if service in t.consumers}
    writes = {t.name for t in TOPICS if service in (t.owner, *t.also_written_by)}
    for name in reads:
        grant("topic", name, "Read")
        grant("topic", f"{name}.dlq", "Write")
    for name in writes:
        grant("topic", name, "Write")
    if reads:
        grant("group", service, "Read")
    return expected


def test_each_service_signs_in_as_its_own_kafka_user_with_acls_from_the_registry(
    production_resources: list[dict[str, Any]],
    default_resources: list[dict[str, Any]],
    chart_values: dict[str, Any],
) -> None:
    assert _of_kind(default_resources, "KafkaUser") == []
    users = {_component(user): user for user in _of_kind(production_resources, "KafkaUser")}
    assert set(users) == set(chart_values["services"])
    deployments = {_component(d): d for d in _of_kind(production_resources, "Deployment")}
    for service, user in users.items():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "enquetes"
        assert user["metadata"]["namespace"] == NAMESPACE  # where the services read the Secret
        assert _acls(user) == _expected_access(service), service
        name = user["metadata"]["name"]
        assert name == f"{RELEASE}-{service}"
        (container,) = deployments[service]["spec"]["template"]["spec"]["containers"]
        env = _env(container)
        assert env["KAFKA_SASL_USERNAME"]["value"] == name
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": name,
            "key": "password",
        }
    report = _weekly_report(production_resources)["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = report["spec"]["containers"]
    assert _env(container)["KAFKA_SASL_USERNAME"]["value"] == f"{RELEASE}-scoring"


def _consumed_topics(service: str) -> set[str]:
    """The topics a service's code passes to `runtime.consume(...)`, read from its source."""
    import ast

    import contracts.topics as registry

    package = SERVICE_PACKAGES[service]
    folder = REPO / "services" / service / package
    found: set[str] = set()
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "consume"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "runtime"  # not the rebuild's librdkafka `consume`
                and node.args
            ):
                continue
            argument = node.args[0]
            if isinstance(argument, ast.List):
                for element in argument.elts:
                    assert isinstance(element, ast.Name), ast.dump(element)
                    found.add(getattr(registry, element.id).name)
            else:  # list(CONSUMED): a constant of the module
                assert isinstance(argument, ast.Call) and isinstance(argument.args[0], ast.Name)
                module = importlib.import_module(f"{package}.{path.stem}")
                found |= {topic.name for topic in getattr(module, argument.args[0].id)}
    return found


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_a_services_kafka_user_may_read_every_topic_its_code_consumes(
    production_resources: list[dict[str, Any]], service: str
) -> None:
    consumed = _consumed_topics(service)
    assert consumed, f"{service} consumes nothing?"
    (user,) = [u for u in _of_kind(production_resources, "KafkaUser") if _component(u) == service]
    acls = _acls(user)
    for topic in consumed:
        assert "Read" in acls.get(("topic", topic), set()), f"{service} reads {topic}"
        assert "Write" in acls.get(("topic", f"{topic}.dlq"), set()), f"{service} DLQ {topic}"


def test_scorings_rebuild_replays_only_topics_its_kafka_user_may_read(
    production_resources: list[dict[str, Any]],
) -> None:
    """`scoring rebuild` runs with scoring's Kafka login and reads the topics from the start."""
    from scoring import rebuild

    (user,) = [u for u in _of_kind(production_resources, "KafkaUser") if _component(u) == "scoring"]
    acls = _acls(user)
    for topic in rebuild.REPLAYED_TOPICS:
        assert "Read" in acls.get(("topic", topic.name), set()), topic.name


def test_kafka_users_need_scram() -> None:
    values = {"kafkaUsers": {"enabled": True}}
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE)
    assert "kafkaUsers.enabled needs kafka.sasl.mechanism SCRAM-SHA-512" in str(caught.value)


def _test_pod(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [r for r in _of_kind(resources, "Pod") if r["_source"].endswith("tests/ready.yaml")]
    return pod


def test_helm_test_asks_every_enabled_service_whether_it_is_ready(
    rendered: list[dict[str, Any]], chart_values: dict[str, Any]
) -> None:
    pod = _test_pod(rendered)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    urls = container["command"][3:]
    assert urls == [
        f"http://{RELEASE}-{service}.{NAMESPACE}.svc/readyz"
        for service in sorted(chart_values["services"])
    ]
    scoring = _scoring_deployment(rendered)["spec"]["template"]["spec"]
    assert container["image"] == scoring["containers"][0]["image"]
    assert container["securityContext"] == scoring["containers"][0]["securityContext"]
    assert pod["spec"]["restartPolicy"] == "Never"
    for policy in _of_kind(rendered, "NetworkPolicy"):  # the test Pod may reach every service
        if policy["_source"] != "enquetes/templates/services.yaml":
            continue
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        assert any(
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
            == "helm-test"
            for peer in peers
        ), _component(policy)


def test_helm_test_script_runs_and_fails_on_a_service_not_ready(
    default_resources: list[dict[str, Any]],
) -> None:
    """The Pod's own Python, against a local answer: 200 passes, 503 fails."""
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    script = _test_pod(default_resources)["spec"]["containers"][0]["command"][2]
    try:
        ok = subprocess.run([sys.executable, "-c", script, f"{base}/ok/readyz"], timeout=30)
        down = subprocess.run(
            [sys.executable, "-c", script, f"{base}/ok/readyz", f"{base}/down/readyz"], timeout=30
        )
    finally:
        server.shutdown()
    assert (ok.returncode, down.returncode) == (0, 1)


def test_tracing_env_reaches_every_service_only_when_a_collector_is_set(
    default_resources: list[dict[str, Any]],
) -> None:
    for deployment in _of_kind(default_resources, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert not any(name.startswith("OTEL_") for name in _env(container))
    traced = _render({
        "tracing": {
            "otlpEndpoint": "http://otel-collector.monitoring:4318",
            "env": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": 0.1},
        }
    })  # fmt: skip
    for deployment in _of_kind(traced, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {name: item.get("value") for name, item in _env(container).items()}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        assert env["OTEL_SERVICE_NAME"] == _component(deployment)
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    with helm.Chart.load(CHART) as chart, pytest.raises(Exception, match="OTEL_"):
        chart.validate_schema(chart.merge_values({"tracing": {"env": {"LOG_LEVEL": "DEBUG"}}}))
