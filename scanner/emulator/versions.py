"""Bucket versioning (reference 14.3) and overwrite safety (14.1) of the emulated buckets.

A bucket's versioning is never enabled (no entry), `Enabled` or `Suspended`. Once enabled,
every write at a key (an upload, a copy's destination) adds a version, and a DELETE without
`versionId` adds a delete marker; the object at the key is the newest version unless that is a
marker. An object that was there before versioning was enabled is the version `null`. A
DELETE with `versionId` removes that version (or marker) for good. While versioning is
suspended, writes and markers take the id `null`, replacing any earlier `null` version.

`x-cos-forbid-overwrite: true` refuses a write at an existing key with 409 FileAlreadyExists,
as the third-party note the reference cites says, and is ignored once versioning has ever been
enabled on the bucket (both [UNCONFIRMED] there: the emulator follows the note).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from scanner.emulator.bucket import Bucket, StoredObject
from scanner.emulator.wire import Refusal

NULL = "null"


@dataclass(slots=True)
class Version:
    id: str
    obj: StoredObject | None  # None: a delete marker


@dataclass(slots=True)
class Versions:
    status: dict[str, str] = field(default_factory=dict)  # bucket name -> Enabled | Suspended
    history: dict[str, list[Version]] = field(default_factory=dict)  # "bucket/key", oldest first

    def ever(self, bucket: str) -> bool:
        return bucket in self.status

    def _seeded(self, bucket: str, key: str, objects: Bucket) -> list[Version]:
        """The key's versions, with the object from before versioning as `null`."""
        where = f"{bucket}/{key}"
        if where not in self.history:
            before = objects.objects.get(key)
            self.history[where] = [Version(NULL, before)] if before is not None else []
        return self.history[where]

    def _new_id(self, bucket: str, versions: list[Version]) -> str:
        if self.status[bucket] == "Enabled":
            return "MTg0" + secrets.token_hex(12)  # opaque, as COS's are
        versions[:] = [v for v in versions if v.id != NULL]  # suspended: `null` is replaced
        return NULL

    def check_overwrite(self, bucket: str, key: str, objects: Bucket, forbid: bool) -> None:
        """`x-cos-forbid-overwrite: true` at an existing key of a never-versioned bucket."""
        if forbid and not self.ever(bucket) and key in objects.objects:
            raise Refusal(409, "FileAlreadyExists", "The object already exists.")

    def write(self, bucket: str, key: str, objects: Bucket, obj: StoredObject) -> str | None:
        """Put `obj` at `key`; the new version's id (None on a never-versioned bucket)."""
        version = None
        if self.ever(bucket):
            versions = self._seeded(bucket, key, objects)
            version = self._new_id(bucket, versions)
            versions.append(Version(version, obj))
        objects.put(key, obj)
        objects.keys()
        return version

    def delete(
        self, bucket: str, key: str, objects: Bucket, version_id: str | None
    ) -> dict[str, str]:
        """DELETE, with or without `versionId`; the answer's version headers."""
        if not self.ever(bucket):
            if version_id not in (None, NULL):
                return {}
            objects.delete(key)
            objects.keys()
            return {}
        versions = self._seeded(bucket, key, objects)
        headers: dict[str, str] = {}
        if version_id is None:  # a delete marker
            marker = self._new_id(bucket, versions)
            versions.append(Version(marker, None))
            headers = {"x-cos-delete-marker": "true", "x-cos-version-id": marker}
        else:
            gone = [v for v in versions if v.id == version_id]
            versions[:] = [v for v in versions if v.id != version_id]
            headers = {"x-cos-version-id": version_id}
            if gone and gone[0].obj is None:
                headers["x-cos-delete-marker"] = "true"
        self._settle(key, objects, versions)
        return headers

    @staticmethod
    def _settle(key: str, objects: Bucket, versions: list[Version]) -> None:
        """The object at the key is the newest version, unless that is a marker."""
        newest = versions[-1].obj if versions else None
        if newest is None:
            objects.delete(key)
        else:
            objects.put(key, newest)
        objects.keys()

    def find(self, bucket: str, key: str, objects: Bucket, version_id: str) -> StoredObject:
        """The object of one version (404 for a marker or an unknown version)."""
        if not self.ever(bucket):
            obj = objects.objects.get(key) if version_id == NULL else None
        else:
            found = [v for v in self._seeded(bucket, key, objects) if v.id == version_id]
            if found and found[0].obj is None:
                raise Refusal(404, "NoSuchKey", "The specified key does not exist.")
            obj = found[0].obj if found else None
        if obj is None:
            raise Refusal(404, "NoSuchVersion", "The specified version does not exist.")
        return obj

    def current_id(self, bucket: str, key: str) -> str | None:
        """The id of the version at the key (None on a never-versioned bucket)."""
        if not self.ever(bucket):
            return None
        versions = self.history.get(f"{bucket}/{key}")
        return versions[-1].id if versions else NULL

    def configuration(self, bucket: str) -> str:
        """GET ?versioning: `<VersioningConfiguration/>` until versioning was ever enabled."""
        status = self.status.get(bucket)
        inner = f"<Status>{status}</Status>" if status else ""
        return f"<VersioningConfiguration>{inner}</VersioningConfiguration>"

    def configure(self, bucket: str, status: str) -> None:
        """PUT ?versioning: Enabled or Suspended (once enabled, never back to none)."""
        if status not in ("Enabled", "Suspended"):
            raise Refusal(400, "MalformedXML", "Status must be Enabled or Suspended")
        if status == "Suspended" and not self.ever(bucket):
            return  # suspending a never-versioned bucket changes nothing
        self.status[bucket] = status
