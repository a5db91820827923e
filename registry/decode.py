"""Request bodies decoded as Consul decodes them, with Consul's status codes and error texts.

Go's ``encoding/json`` matches field names case-insensitively and Consul also accepts snake_case
aliases (``deregister_critical_service_after``), so keys are compared lower-cased and without
underscores. Order and wording of the checks follow ``AgentRegisterService`` and
``AgentRegisterCheck`` in agent/agent_endpoint.go and ``CheckType.Validate`` in
agent/structs/check_type.go; service metadata as ``structs.ValidateServiceMetadata`` (``meta``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .durations import DurationError, parse_duration_ns
from .errors import ApiError, bad_request
from .meta import meta_problem
from .model import STATUSES, CheckSpec, Service

_GO_TYPES: dict[type, str] = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
}
_UNSUPPORTED = (
    "args",
    "scriptargs",
    "script",
    "dockercontainerid",
    "grpc",
    "udp",
    "h2ping",
    "aliasnode",
    "aliasservice",
    "osservice",
)
_ANY_ADDRESS = ("0.0.0.0", "::", "[::]")
_INT64_RANGE = 2**63


@dataclass(frozen=True)
class CheckRegistration:
    """One check from a service or check registration, before the agent assigns defaults."""

    check_id: str
    name: str
    status: str
    notes: str
    service_id: str
    spec: CheckSpec


@dataclass(frozen=True)
class ServiceRegistration:
    """A decoded ``PUT /v1/agent/service/register`` body."""

    service: Service
    checks: tuple[CheckRegistration, ...]


def decode_body(body: bytes, go_type: str) -> dict[str, Any]:
    """Parse a JSON object body; errors read like Go's decoder inside "Request decode failed"."""
    if not body.strip():
        raise _decode_failed("EOF")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise _decode_failed(f"invalid JSON: {err}") from err
    if not isinstance(raw, dict):
        kind = _go_type_name(raw)
        raise _decode_failed(f"json: cannot unmarshal {kind} into Go value of type {go_type}")
    return {_key(k): v for k, v in raw.items()}


def service_registration(body: bytes) -> ServiceRegistration:
    """Decode and validate a service registration like ``AgentRegisterService``."""
    raw = decode_body(body, "structs.ServiceDefinition")
    where = "ServiceDefinition"
    name = _typed(raw, "Name", str, where, "")
    address = _typed(raw, "Address", str, where, "")
    service = Service(
        service_id=_typed(raw, "ID", str, where, "") or name,
        name=name,
        tags=[str(t) for t in _typed(raw, "Tags", list, where, [])],
        address=address,
        port=_typed(raw, "Port", int, where, 0),
        meta=_meta(_typed(raw, "Meta", dict, where, {}), where),
        enable_tag_override=_typed(raw, "EnableTagOverride", bool, where, False),
    )
    weights = _typed(raw, "Weights", dict, where, None)
    tagged = _typed(raw, "TaggedAddresses", dict, where, {})
    raw_checks: list[dict[str, Any]] = []
    single = _typed(raw, "Check", dict, where, None)
    if single:
        raw_checks.append(single)
    raw_checks.extend(_typed(raw, "Checks", list, where, []))
    checks = [_check_fields(c, f"{where}.Checks") for c in raw_checks]
    if not name:
        raise bad_request("Missing service name")
    service.tagged_addresses = {
        str(kind): _service_address(value, f"{where}.TaggedAddresses")
        for kind, value in tagged.items()
    }
    if address in _ANY_ADDRESS or any(
        t["Address"] in _ANY_ADDRESS for t in service.tagged_addresses.values()
    ):
        raise bad_request("Invalid service address")
    if weights is not None:
        service.weights = _weights(weights)
    if (problem := meta_problem(service.meta)) is not None:
        raise bad_request(f"Invalid Service Meta: {problem}")
    registrations = tuple(_validated(c) for c in checks)
    for check in registrations:
        if check.status and check.status not in STATUSES:
            raise bad_request("Status for checks must 'passing', 'warning', 'critical'")
    return ServiceRegistration(service=service, checks=registrations)


def check_registration(body: bytes) -> CheckRegistration:
    """Decode and validate ``PUT /v1/agent/check/register`` like ``AgentRegisterCheck``."""
    raw = decode_body(body, "structs.CheckDefinition")
    fields = _check_fields(raw, "CheckDefinition")
    if not fields["name"]:
        raise bad_request("Missing check name")
    if fields["status"] and fields["status"] not in STATUSES:
        raise bad_request("Bad check status")
    return _validated(fields)


def _check_fields(raw_in: object, where: str) -> dict[str, Any]:
    if not isinstance(raw_in, dict):
        kind = _go_type_name(raw_in)
        raise _decode_failed(
            f"json: cannot unmarshal {kind} into Go value of type structs.CheckType"
        )
    raw = {_key(k): v for k, v in raw_in.items()}
    unsupported = [k for k in _UNSUPPORTED if raw.get(k)]
    header = _typed(raw, "Header", dict, where, {})
    for values in header.values():
        _typed({"header": values}, "Header", list, where, [])
    return {
        "check_id": _typed(raw, "CheckID", str, where, "") or _typed(raw, "ID", str, where, ""),
        "name": _typed(raw, "Name", str, where, ""),
        "status": _typed(raw, "Status", str, where, ""),
        "notes": _typed(raw, "Notes", str, where, ""),
        "service_id": _typed(raw, "ServiceID", str, where, ""),
        "unsupported": unsupported,
        "spec": CheckSpec(
            http=_typed(raw, "HTTP", str, where, ""),
            method=_typed(raw, "Method", str, where, ""),
            header=tuple((str(k), tuple(str(v) for v in vs)) for k, vs in header.items()),
            body=_typed(raw, "Body", str, where, ""),
            disable_redirects=_typed(raw, "DisableRedirects", bool, where, False),
            tls_skip_verify=_typed(raw, "TLSSkipVerify", bool, where, False),
            tcp=_typed(raw, "TCP", str, where, ""),
            interval_ns=_duration(raw.get("interval")),
            timeout_ns=_duration(raw.get("timeout")),
            ttl_ns=_duration(raw.get("ttl")),
            deregister_after_ns=_duration(raw.get("deregistercriticalserviceafter")),
        ),
    }


def _validated(fields: dict[str, Any]) -> CheckRegistration:
    spec: CheckSpec = fields["spec"]
    if fields["unsupported"]:
        kinds = ", ".join(fields["unsupported"])
        raise bad_request(
            f"Invalid check: the registry runs only HTTP, TCP and TTL checks ({kinds})"
        )
    interval_check = bool(spec.http or spec.tcp)
    if spec.interval_ns > 0 and spec.ttl_ns > 0:
        raise bad_request("Invalid check: Interval and TTL cannot both be specified")
    if interval_check and spec.interval_ns <= 0:
        reason = "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        raise bad_request(f"Invalid check: {reason}")
    if not interval_check and spec.ttl_ns <= 0:
        raise bad_request("Invalid check: TTL must be > 0 for TTL checks")
    return CheckRegistration(
        check_id=fields["check_id"],
        name=fields["name"],
        status=fields["status"],
        notes=fields["notes"],
        service_id=fields["service_id"],
        spec=spec,
    )


def _service_address(raw_in: object, where: str) -> dict[str, object]:
    # structs.ServiceAddress: {"Address": string, "Port": int}, keys matched as Go matches them.
    if not isinstance(raw_in, dict):
        kind = _go_type_name(raw_in)
        raise _decode_failed(
            f"json: cannot unmarshal {kind} into Go value of type structs.ServiceAddress"
        )
    raw = {_key(k): v for k, v in raw_in.items()}
    return {
        "Address": _typed(raw, "Address", str, where, ""),
        "Port": _typed(raw, "Port", int, where, 0),
    }


def _meta(raw: dict[str, Any], where: str) -> dict[str, str]:
    # map[string]string: a value that is not a string fails the decode, as in Go.
    for value in raw.values():
        if not isinstance(value, str):
            message = f"json: cannot unmarshal {_go_type_name(value)} into Go struct field "
            raise _decode_failed(message + f"{where}.Meta of type string")
    return dict(raw)


def _weights(raw: dict[str, Any]) -> dict[str, int]:
    values = {_key(k): v for k, v in raw.items()}
    passing, warning = values.get("passing", 0), values.get("warning", 0)
    if not isinstance(passing, int) or passing <= 0:
        raise bad_request("Invalid Weights: Passing must be greater than 0")
    if not isinstance(warning, int) or warning < 0:
        raise bad_request("Invalid Weights: Warning must be greater or equal than 0")
    return {"Passing": passing, "Warning": warning}


def _duration(value: object) -> int:
    # CheckType.UnmarshalJSON: strings go through time.ParseDuration, numbers are nanoseconds,
    # decoded as float64 and converted with time.Duration(v). A float64 out of int64's range
    # converts to the smallest int64 on amd64 (Go leaves it to the platform): a negative
    # duration, which the checks below refuse or ignore as Consul does.
    if isinstance(value, str):
        try:
            return parse_duration_ns(value)
        except DurationError as err:
            raise _decode_failed(str(err)) from err
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        as_float = float(value)
        if -_INT64_RANGE <= as_float < _INT64_RANGE:
            return int(as_float)
        return -_INT64_RANGE
    return 0


def _typed(raw: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = raw.get(_key(key))
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not ok:
        containers: dict[type, str] = {dict: "map", list: "slice"}
        go_kind = containers.get(kind) or _GO_TYPES.get(kind, kind.__name__)
        message = f"json: cannot unmarshal {_go_type_name(value)} into Go struct field "
        raise _decode_failed(message + f"{where}.{key} of type {go_kind}")
    return value


def _go_type_name(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    return _GO_TYPES.get(type(value), "null")


def _key(key: str) -> str:
    return key.replace("_", "").lower()


def _decode_failed(reason: str) -> ApiError:
    return bad_request(f"Request decode failed: {reason}")
