"""Every Redis key the engine uses, in one place (docs/redis-model.md explains each).

All keys of one practice share the hash tag ``{p:<practice_id>}`` so that every script, including a
reschedule across two practitioners, touches keys of one Redis Cluster slot.
"""

from __future__ import annotations

VERSION = "v1"
ROOT = f"bk:{VERSION}"

# Global, never touched by a script: the set of practice ids (for sweepers and the persister).
PRACTICES = f"{ROOT}:practices"


def tag(practice_id: str) -> str:
    return f"{ROOT}:{{p:{practice_id}}}"


def practice(pid: str) -> str:
    return f"{tag(pid)}:practice"


def practitioners(pid: str) -> str:
    return f"{tag(pid)}:practitioners"


def visit_types(pid: str) -> str:
    return f"{tag(pid)}:vtypes"


def schedule(pid: str, practitioner_id: str) -> str:
    return f"{tag(pid)}:sched:{practitioner_id}"


def base(pid: str, practitioner_id: str, visit_type_id: str) -> str:
    return f"{tag(pid)}:base:{practitioner_id}:{visit_type_id}"


def versions(pid: str, practitioner_id: str) -> str:
    """Availability versions: UTC-day bucket -> counter, and 'all' (engine/search_cache.py). One hash per practice,
    shared by its practitioners (a change of one bumps the counters of all, which stays exact and lets a cached
    search read the versions of every practitioner it asks with one HMGET); scripts still name the practitioner
    whose availability they change."""
    del practitioner_id
    return f"{tag(pid)}:ver"


def resources(pid: str) -> str:
    """Resource id -> Resource JSON (engine.model.Resource: name, kind and its closures), the rooms and equipment
    of the practice; the claim scripts read a visit type's resources and their closures here."""
    return f"{tag(pid)}:resources"


def resource_claims(pid: str) -> str:
    """Every claim of every resource of the practice (one zset, so a claim script names one key whatever the
    visit type needs): '<resource_id>|h|<hold_id>|<end_s>|<expires_ms>' or '<resource_id>|b|<appt_id>|<end_s>|0',
    scored by the visit's start (a resource is occupied over the visit itself, no buffers)."""
    return f"{tag(pid)}:rclaims"


def claims(pid: str, practitioner_id: str) -> str:
    return f"{tag(pid)}:claims:{practitioner_id}"


def claim_types(pid: str, practitioner_id: str) -> str:
    """Daily limits: claim id (hold or appointment) -> '<visit_type_id>|<start_s>'; read only for members of the
    practitioner's claims zset (an entry of a claim that ended counts nothing; the horizon roll trims old ones)."""
    return f"{tag(pid)}:cvt:{practitioner_id}"


def hold(pid: str, hold_id: str) -> str:
    return f"{tag(pid)}:hold:{hold_id}"


def series(pid: str, series_id: str) -> str:
    """A series (docs/redis-model.md): its occurrences' hold ids, then its appointment ids and manage token hash."""
    return f"{tag(pid)}:series:{series_id}"


def hold_expiries(pid: str) -> str:
    return f"{tag(pid)}:holdexp"


def appointment(pid: str, appointment_id: str) -> str:
    return f"{tag(pid)}:appt:{appointment_id}"


def series_pattern() -> str:
    """SCAN MATCH pattern of every practice's series hashes (the retention tidy; never on a hot path)."""
    return f"{ROOT}:{{p:*}}:series:*"


def appointment_pattern() -> str:
    """SCAN MATCH pattern of every practice's appointment hashes (the retention tidy; never on a hot path)."""
    return f"{ROOT}:{{p:*}}:appt:*"


def stream_gaps(pid: str) -> str:
    """Consumer group -> '<from_ms>:<to_ms>': entries of the practice's stream in that range were trimmed while the
    group had no running consumer (persistence/trimming.py); its consumer catches up from the database."""
    return f"{tag(pid)}:stream-gaps"


def waitlist_queue(pid: str) -> str:
    """Live waitlist entries (waiting or offered), score = join order (docs/waitlist.md)."""
    return f"{tag(pid)}:wl:queue"


def waitlist_entries(pid: str) -> str:
    """Waitlist entry id -> entry JSON (engine.model.WaitlistRecord)."""
    return f"{tag(pid)}:wl:entries"


def waitlist_index(pid: str) -> str:
    """The offer walk's index of live entries (docs/waitlist.md, "The index"): a lex zset (all scores 0), one member
    '<visit type>|<UTC day>|<practitioner or *>|<order, 12 digits>|<entry id>' per UTC day the entry's spans touch."""
    return f"{tag(pid)}:wl:ix"


def waitlist_waiting(pid: str) -> str:
    """Waiting entries (not offered) for ``position``: a lex zset, '<visit type>|<order, 12 digits>|<entry id>'."""
    return f"{tag(pid)}:wl:waiting"


def waitlist_client(pid: str, client_ref: str) -> str:
    """The entry ids one public client (or app end user) joined this practice's waitlist with, for its cap."""
    return f"{tag(pid)}:wl:client:{client_ref}"


def waitlist_stats(pid: str) -> str:
    """Waitlist counters: joined (also the join order), offers, accepted, declined, lapsed, left."""
    return f"{tag(pid)}:wl:stats"


def events(pid: str) -> str:
    return f"{tag(pid)}:events"


def persist_lease(pid: str) -> str:
    """The persister that may read the practice's stream now (its owner id, with a TTL): persistence/shares.py."""
    return f"{tag(pid)}:persist-lease"


def practice_marker(pid: str) -> str:
    """``since_ms``: written with the practice and by reconciliation; missing while the database knows the
    practice means Redis lost the practice's data (persistence/shards.py)."""
    return f"{tag(pid)}:present"


def audit(pid: str) -> str:
    return f"{tag(pid)}:audit"


def api_keys(pid: str) -> str:
    return f"{tag(pid)}:apikeys"


def api_key_hashes(pid: str) -> str:
    return f"{tag(pid)}:apikey-hashes"


def api_key_tombstones(pid: str) -> str:
    """key_id -> revoked_ms of every revoked key: a revocation is final, reconciliation never restores such a key."""
    return f"{tag(pid)}:apikey-revoked"


# App keys (consumer booking apps' backends): global, under one hash tag of their own.
APP_KEYS = f"{ROOT}:{{appkeys}}:keys"  # key id -> AppKey json
APP_KEY_HASHES = f"{ROOT}:{{appkeys}}:hashes"  # sha256 of the key -> key id
APP_KEY_TOMBSTONES = f"{ROOT}:{{appkeys}}:revoked"  # key id -> revoked_ms


def client_requests(client: str, action: str) -> str:
    """Abuse limits of one public client (its own hash tag: never touched with practice keys)."""
    return f"{ROOT}:{{c:{client}}}:req:{action}"


def client_holds(client: str) -> str:
    return f"{ROOT}:{{c:{client}}}:holds"


def idempotency(pid: str, scope: str, ref: str | None) -> str:
    """``ref`` derives from the client's Idempotency-Key (engine/idempotency.py), which never appears in Redis.
    A placeholder key of the same slot when no Idempotency-Key was sent (scripts ignore it then)."""
    return f"{tag(pid)}:idem:{scope}:{ref if ref is not None else '-'}"


# Consumer groups reading every practice's event stream. Both exist from the first read on, so that
# trimming never drops an entry one of them has not seen.
PERSIST_GROUP = "persisters"
NOTIFY_GROUP = "notifier"
GROUPS = (PERSIST_GROUP, NOTIFY_GROUP)

# Global: held by the one process that runs the hourly appointment tidy (persistence/retention.py).
TIDY_LOCK = f"{ROOT}:tidy-lock"
WAITLIST_TIDY_LOCK = f"{ROOT}:wl-tidy-lock"

# Global marker: set by reconciliation once Redis holds what PostgreSQL holds.
META = f"{ROOT}:meta"


def reconcile_lock() -> str:
    """Global: held by the one process that reconciles Redis from PostgreSQL after Redis lost its data."""
    return f"{ROOT}:reconcile-lock"


# Global: audit ids whose stream entry the persister holds back (stored with other content), until an operator
# looks (/readyz persister_held, /metrics booking_persister_held_events).
PERSIST_HELD = f"{ROOT}:persist-held"
# Global hash: audit id -> "<ms> <action> <why>" of the events in the persister's quarantine (persistence/quarantine.py),
# refreshed from the database by the persister; /readyz names them.
PERSIST_QUARANTINED = f"{ROOT}:persist-quarantined"

# The live persisters (persistence/shares.py), all under one hash tag of their own (one slot, one node): the
# member ids, and one key per member that its heartbeats keep alive (PX: Redis's clock decides, not the hosts').
PERSIST_MEMBERS = f"{ROOT}:{{persisters}}:members"


def persist_member(member: str) -> str:
    return f"{ROOT}:{{persisters}}:alive:{member}"


# Global hash, written by the persisters: practice id -> "<detected_ms> <why>" for each practice whose data Redis
# lost and that reconciliation has not yet put back (persistence/shards.py; /readyz lost_practices).
LOST = f"{ROOT}:lost"
