"""Fault injection: latency, leaky-bucket rate limits and per-request fault rules.

A fault configuration is a JSON object (see emulator/README.md, "Faults"). It is parsed and
validated into a Faults object; the server swaps the whole object when the configuration is
replaced at run time.
"""

import math
import random
import time

from emu_event_endpoints import ENDPOINTS as EVENT_ENDPOINTS
from emu_event_endpoints import REALISTIC_RATE_LIMITS as EVENT_RATE_LIMITS
from emu_users import ENDPOINTS as USER_ENDPOINTS, REALISTIC_RATE_LIMITS as USER_RATE_LIMITS

ENDPOINTS = ("get_lists", "create_list", "delete_list", "get_users", "subscribe",
             "unsubscribe") + USER_ENDPOINTS + EVENT_ENDPOINTS

# Kinds answered instead of the real handler (state is not touched).
RESPONSE_KINDS = ("error_500", "error_503", "status", "rate_limit", "drop", "malformed_json",
                  "unexpected_shape", "huge_body")
# Kinds after which the request is handled normally.
DELIVERY_KINDS = ("hang", "trickle", "drop_after_apply")
KINDS = ("latency",) + RESPONSE_KINDS + DELIVERY_KINDS + ("delete_list_after",)

_COMMON_KEYS = {"kind", "endpoint", "api_key", "rate", "next", "skip"}
_KIND_KEYS = {
    "latency": {"ms", "jitter_ms"},
    "error_500": set(), "error_503": set(), "rate_limit": set(),
    "status": {"status", "body", "content_type", "headers"},
    "drop": {"partial"},
    "hang": {"seconds"},
    "trickle": {"chunk_bytes", "interval_ms"},
    "drop_after_apply": set(),      # the request is applied, then the answer is lost
    "malformed_json": {"body"},
    "unexpected_shape": {"body"},
    "huge_body": {"size_bytes", "status"},
    "delete_list_after": {"subscribes", "list_id"},
}
_TOP_KEYS = {"seed", "latency_ms", "jitter_ms", "rate_limits", "rate_limit_body",
             "rate_limit_retry_after", "new_list_invalid_seconds", "rules"}

DEFAULT_MALFORMED_BODY = '{"successCount":1,"failCount":0,"failedUpdates":{"invalidEmails":['
DEFAULT_UNEXPECTED_BODY = {"status": "ok", "result": {"accepted": True}}

# Documented limits (reference section 5), installed by --realistic-rate-limits.
REALISTIC_RATE_LIMITS = [
    {"endpoint": "get_lists", "rate": 100, "burst": 100},
    {"endpoint": "get_users", "rate": 5 / 60.0, "burst": 5},
] + USER_RATE_LIMITS + EVENT_RATE_LIMITS


class FaultConfigError(ValueError):
    pass


def _number(obj, key, default, minimum=0.0, maximum=None, integer=False, allow_none=False):
    value = obj.get(key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            integer and not isinstance(value, int)):
        raise FaultConfigError("%s must be %s" % (key, "an integer" if integer else "a number"))
    if value < minimum or (maximum is not None and value > maximum):
        raise FaultConfigError("%s out of range: %r" % (key, value))
    return value


def _endpoints(value):
    if value is None or value == "*" or value == "all":
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise FaultConfigError("endpoint must be a name, a list of names or '*'")
    for name in names:
        if name not in ENDPOINTS:
            raise FaultConfigError("unknown endpoint %r (one of %s or '*')"
                                   % (name, ", ".join(ENDPOINTS)))
    return frozenset(names)


class Rule:
    """One fault rule with its selector (endpoint, api_key, rate / next / skip)."""

    def __init__(self, spec, index):
        if not isinstance(spec, dict):
            raise FaultConfigError("rule %d must be an object" % index)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultConfigError("rule %d: unknown kind %r (one of %s)"
                                   % (index, kind, ", ".join(KINDS)))
        unknown = set(spec) - _COMMON_KEYS - _KIND_KEYS[kind]
        if unknown:
            raise FaultConfigError("rule %d (%s): unknown keys %s" % (index, kind, sorted(unknown)))
        self.spec = spec
        self.index = index
        self.kind = kind
        self.endpoints = _endpoints(spec.get("endpoint"))
        self.api_key = spec.get("api_key")
        self.rate = _number(spec, "rate", None, 0.0, 1.0, allow_none=True)
        self.next = _number(spec, "next", None, 0, integer=True, allow_none=True)
        self.skip = _number(spec, "skip", 0, 0, integer=True)
        self.matched = 0
        self.fired = 0
        self._parse_params(spec)

    def _parse_params(self, spec):
        kind = self.kind
        if kind == "latency":
            self.ms = _number(spec, "ms", 0)
            self.jitter_ms = _number(spec, "jitter_ms", 0)
        elif kind == "status":
            self.status = _number(spec, "status", 500, 100, 599, integer=True)
            self.body = spec.get("body", "")
            self.content_type = spec.get("content_type")
            self.headers = spec.get("headers") or {}
            if not isinstance(self.headers, dict):
                raise FaultConfigError("status.headers must be an object")
        elif kind == "drop":
            self.partial = bool(spec.get("partial", False))
        elif kind == "hang":
            self.seconds = _number(spec, "seconds", None, allow_none=True)
        elif kind == "trickle":
            self.chunk_bytes = _number(spec, "chunk_bytes", 16, 1, integer=True)
            self.interval_ms = _number(spec, "interval_ms", 100)
        elif kind == "malformed_json":
            self.body = spec.get("body", DEFAULT_MALFORMED_BODY)
            if not isinstance(self.body, str):
                raise FaultConfigError("malformed_json.body must be a string")
        elif kind == "unexpected_shape":
            self.body = spec.get("body", DEFAULT_UNEXPECTED_BODY)
        elif kind == "huge_body":
            self.size_bytes = _number(spec, "size_bytes", 16 * 1024 * 1024, 16, integer=True)
            self.status = _number(spec, "status", 200, 100, 599, integer=True)
        elif kind == "delete_list_after":
            self.subscribes = _number(spec, "subscribes", 1, 1, integer=True)
            self.list_id = spec.get("list_id")
            self.endpoints = frozenset(["subscribe"])

    def applies(self, endpoint, api_key):
        return ((self.endpoints is None or endpoint in self.endpoints)
                and (self.api_key is None or self.api_key == api_key))

    def fires(self, rng):
        """Whether the rule fires for a request it matched (already counted in matched)."""
        if self.matched <= self.skip:
            return False
        if self.next is not None and self.fired >= self.next:
            return False
        if self.rate is not None and rng.random() >= self.rate:
            return False
        self.fired += 1
        return True

    def describe(self):
        out = dict(self.spec, matched=self.matched, fired=self.fired)
        if self.next is not None:
            out["remaining"] = max(0, self.next - self.fired)
        return out


class RateLimit:
    """Leaky bucket per (api key, endpoint): each request adds 1, the bucket drains at
    `rate` per second and holds at most `burst`."""

    def __init__(self, spec, index):
        if not isinstance(spec, dict):
            raise FaultConfigError("rate_limits[%d] must be an object" % index)
        unknown = set(spec) - {"endpoint", "rate", "burst", "api_key"}
        if unknown:
            raise FaultConfigError("rate_limits[%d]: unknown keys %s" % (index, sorted(unknown)))
        self.spec = spec
        self.endpoints = _endpoints(spec.get("endpoint"))
        self.api_key = spec.get("api_key")
        self.rate = _number(spec, "rate", 1.0)
        self.burst = _number(spec, "burst", 1.0, 1.0)
        if self.rate <= 0:
            raise FaultConfigError("rate_limits[%d].rate must be > 0" % index)
        self.buckets = {}           # (api_key, endpoint) -> [level, last time]
        self.limited = 0

    def admit(self, endpoint, api_key, now):
        """None when admitted, else seconds until one more request would fit."""
        if self.endpoints is not None and endpoint not in self.endpoints:
            return None
        if self.api_key is not None and self.api_key != api_key:
            return None
        key = (api_key, endpoint)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = [0.0, now]
        level = max(0.0, bucket[0] - (now - bucket[1]) * self.rate)
        bucket[1] = now
        if level + 1.0 > self.burst + 1e-9:
            bucket[0] = level
            self.limited += 1
            return (level + 1.0 - self.burst) / self.rate
        bucket[0] = level + 1.0
        return None

    def describe(self):
        return dict(self.spec, limited=self.limited)


class Faults:
    """A parsed fault configuration plus its counters and seeded RNG."""

    def __init__(self, config=None):
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise FaultConfigError("the fault configuration must be a JSON object")
        unknown = set(config) - _TOP_KEYS
        if unknown:
            raise FaultConfigError("unknown fault settings %s" % sorted(unknown))
        self.config = config
        self.seed = config.get("seed", 0)
        self.latency_ms = _number(config, "latency_ms", 0)
        self.jitter_ms = _number(config, "jitter_ms", 0)
        self.rate_limit_body = config.get("rate_limit_body", "text")
        if self.rate_limit_body not in ("text", "json"):
            raise FaultConfigError("rate_limit_body must be 'text' or 'json'")
        self.retry_after = config.get("rate_limit_retry_after")
        if self.retry_after != "auto":
            self.retry_after = _number(config, "rate_limit_retry_after", None, allow_none=True)
        self.new_list_invalid_seconds = _number(config, "new_list_invalid_seconds", 0)
        limits = config.get("rate_limits") or []
        rules = config.get("rules") or []
        if not isinstance(limits, list) or not isinstance(rules, list):
            raise FaultConfigError("rate_limits and rules must be lists")
        self.rate_limits = [RateLimit(spec, i) for i, spec in enumerate(limits)]
        parsed = [Rule(spec, i) for i, spec in enumerate(rules)]
        self.rules = [rule for rule in parsed if rule.kind != "delete_list_after"]
        self.list_deleters = [rule for rule in parsed if rule.kind == "delete_list_after"]
        self._all_rules = parsed
        self.rng = random.Random(self.seed)
        self.jitter_rng = random.Random(self.seed)
        self.quiet = not (self.rules or self.latency_ms or self.jitter_ms)

    def decide(self, endpoint, api_key):
        """(delay in seconds, the terminal rule that fired or None) for one request."""
        if self.quiet:
            return 0.0, None
        delay_ms = self.latency_ms + self._jitter(self.jitter_ms)
        fired = None
        for rule in self.rules:
            if not rule.applies(endpoint, api_key):
                continue
            rule.matched += 1           # every matching rule counts the request (for skip)
            if rule.kind == "latency":
                if rule.fires(self.rng):
                    delay_ms += rule.ms + self._jitter(rule.jitter_ms)
            elif fired is None and rule.fires(self.rng):
                fired = rule            # the first terminal rule that fires wins
        return delay_ms / 1000.0, fired

    def _jitter(self, jitter_ms):
        return self.jitter_rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0

    def admit(self, endpoint, api_key):
        """None when no rate limit refuses the request, else the seconds to wait."""
        if not self.rate_limits:
            return None
        now = time.monotonic()
        for limit in self.rate_limits:
            wait = limit.admit(endpoint, api_key, now)
            if wait is not None:
                return wait
        return None

    def retry_after_header(self, wait):
        if self.retry_after is None:
            return None
        seconds = math.ceil(wait) if self.retry_after == "auto" else self.retry_after
        return str(max(1, int(math.ceil(seconds))))

    def lists_to_delete(self, api_key, list_id):
        """Called after each subscribe answered 200; list ids whose deletion is due."""
        due = []
        for rule in self.list_deleters:
            if rule.fired or (rule.api_key is not None and rule.api_key != api_key):
                continue
            if rule.list_id is not None and rule.list_id != list_id:
                continue
            rule.matched += 1
            if rule.matched >= rule.subscribes:
                rule.fired = 1
                due.append(list_id)
        return due

    def reset_counters(self):
        """A fresh copy of this configuration (counters, buckets and RNG restarted)."""
        return Faults(self.config)

    def describe(self):
        return {
            "seed": self.seed, "latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms,
            "rate_limit_body": self.rate_limit_body,
            "rate_limit_retry_after": self.retry_after,
            "new_list_invalid_seconds": self.new_list_invalid_seconds,
            "rate_limits": [limit.describe() for limit in self.rate_limits],
            "rules": [rule.describe() for rule in self._all_rules],
        }
