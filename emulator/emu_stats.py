"""Request accounting for the admin API: counters, recent summaries, recent raw bodies,
invalid identifiers received, and the unsubscribe flags each request carried."""

import collections
import json
import time

INVALID_SAMPLE_CAP = 100


class Stats:
    def __init__(self, recent=200, bodies_per_endpoint=100):
        self.recent_cap = recent
        self.bodies_cap = bodies_per_endpoint
        self.reset()

    def reset(self):
        self.seq = 0
        self.by_endpoint = {}       # endpoint -> {status: count}
        self.recent = collections.deque(maxlen=self.recent_cap)
        self.bodies = {}            # endpoint -> deque of request records
        self.invalid_counts = {"emails": 0, "userIds": 0, "missing_identifier": 0,
                               "bad_json_body": 0, "data_type_mismatch": 0,
                               "invalid_ids": 0, "too_large": 0, "created_at_ms": 0}
        self.invalid_samples = []
        self.unsubscribe_counts = {"requests": 0, "channelUnsubscribe_sent": 0,
                                   "channelUnsubscribe_true": 0, "campaignId_sent": 0}
        self.unsubscribe_recent = collections.deque(maxlen=self.recent_cap)

    # ----- per request --------------------------------------------------------------
    def record(self, request, endpoint, api_key, status, fault, started, notes):
        self.seq += 1
        counts = self.by_endpoint.get(endpoint)
        if counts is None:
            counts = self.by_endpoint[endpoint] = {}
        key = str(status)
        counts[key] = counts.get(key, 0) + 1
        self.recent.append((self.seq, time.time(), request.method, request.target, endpoint,
                            api_key, status, fault, time.monotonic() - started, notes))
        bodies = self.bodies.get(endpoint)
        if bodies is None:
            bodies = self.bodies[endpoint] = collections.deque(maxlen=self.bodies_cap)
        bodies.append((self.seq, time.time(), request.method, request.target, api_key,
                       status, fault, request.body))

    def note_invalid(self, endpoint, kind, value, list_id=None, detail=None):
        self.invalid_counts[kind] += 1
        if len(self.invalid_samples) < INVALID_SAMPLE_CAP:
            sample = {"seq": self.seq + 1, "endpoint": endpoint, "kind": kind, "value": value,
                      "listId": list_id}
            if detail is not None:
                sample["detail"] = detail
            self.invalid_samples.append(sample)

    def note_unsubscribe_flags(self, body):
        counts = self.unsubscribe_counts
        counts["requests"] += 1
        entry = {"seq": self.seq + 1, "listId": body.get("listId"),
                 "channelUnsubscribe_sent": "channelUnsubscribe" in body,
                 "campaignId_sent": "campaignId" in body}
        if entry["channelUnsubscribe_sent"]:
            counts["channelUnsubscribe_sent"] += 1
            entry["channelUnsubscribe"] = body["channelUnsubscribe"]
            if body["channelUnsubscribe"] is True:
                counts["channelUnsubscribe_true"] += 1
        if entry["campaignId_sent"]:
            counts["campaignId_sent"] += 1
            entry["campaignId"] = body["campaignId"]
        self.unsubscribe_recent.append(entry)

    # ----- views --------------------------------------------------------------------
    def describe(self):
        return {
            "requests": {"total": self.seq,
                         "by_endpoint": {name: dict(counts)
                                         for name, counts in self.by_endpoint.items()}},
            "recent": [self._summary(entry) for entry in self.recent],
            "invalid_received": self.invalid_received(),
            "unsubscribe_flags": dict(self.unsubscribe_counts,
                                      recent=list(self.unsubscribe_recent)),
        }

    def invalid_received(self):
        return {"counts": dict(self.invalid_counts),
                "total": sum(self.invalid_counts.values()),
                "samples": list(self.invalid_samples)}

    @staticmethod
    def _summary(entry):
        seq, when, method, target, endpoint, api_key, status, fault, duration, notes = entry
        out = {"seq": seq, "time": round(when, 3), "method": method, "path": target,
               "endpoint": endpoint, "api_key": api_key, "status": status, "fault": fault,
               "duration_ms": round(duration * 1000.0, 3)}
        if notes:
            out.update(notes)
        return out

    def requests(self, endpoint=None, limit=50):
        """Recent requests (oldest first) with their bodies decoded."""
        if endpoint:
            records = list(self.bodies.get(endpoint, ()))
        else:
            records = sorted((r for queue in self.bodies.values() for r in queue),
                             key=lambda record: record[0])
        records = records[-limit:] if limit > 0 else []
        out = []
        for seq, when, method, target, api_key, status, fault, raw in records:
            entry = {"seq": seq, "time": round(when, 3), "method": method, "path": target,
                     "api_key": api_key, "status": status, "fault": fault}
            if raw:
                try:
                    entry["body"] = json.loads(raw)
                except ValueError:
                    entry["body_raw"] = raw[:65536].decode("utf-8", "replace")
            else:
                entry["body"] = None
            out.append(entry)
        return out
