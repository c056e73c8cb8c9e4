"""Which degradation policy a batch line follows when the line itself sets none.

The same order as the chat API's: the line's own ``understudy.on_degraded``, else the policy of
the key that created the batch (``keys create --on-degraded``), else the server's
(``UNDERSTUDY_API_DEGRADED``). The key is looked up when the line runs, as the chat API looks
it up per request, so changing a key's policy applies to the lines still to run.
"""

from __future__ import annotations

from serving.keys import KeyNotFound, KeyStore
from serving.protocol import OnDegraded


class DegradationPolicies:
    """The policy of a batch's owner key, falling back to the server's.

    Args:
        keys: Where owner keys are looked up.
        default: The server's policy: for batches no key made (the CLI, authentication off),
            keys without a policy of their own, and keys deleted since.
    """

    def __init__(self, keys: KeyStore, default: OnDegraded) -> None:
        self.keys = keys
        self.default = default

    async def of_owner(self, owner_key_id: str | None) -> OnDegraded:
        """The policy for lines of a batch created by ``owner_key_id``.

        Raises:
            StoreError: The database failed (the item stays claimed for another try).
        """
        if owner_key_id is None:
            return self.default
        try:
            key = await self.keys.find(owner_key_id)
        except KeyNotFound:
            return self.default
        return key.on_degraded or self.default
