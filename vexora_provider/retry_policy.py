"""A task retry policy for Vexora tasks: fail at once on what no retry can fix.

Airflow evaluates a task's ``retry_policy`` in the worker with the exception that ended the try.
This one reads the error's :class:`~vexora_provider.exceptions.Permanence` -- the same field the
hook's own retries read -- so a malformed trade number or amount, a bad connection or refused
credentials fail the task on the first try instead of burning every retry on the same error,
while timeouts, 5xx answers and failed polls keep the task's normal retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import RetryDecision, RetryPolicy

from vexora_provider.exceptions import VexoraError

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["VEXORA_RETRY_POLICY", "VexoraRetryPolicy"]


class VexoraRetryPolicy(RetryPolicy):
    """
    Fail a task at once on a Vexora error whose permanence is ``trade`` or ``connection`` and
    that no later try can fix (``task_retryable`` false; an outage of the budget storage keeps
    the task's retries).

    Any other exception gets the task's normal retry behaviour (``retries``, ``retry_delay``).
    """

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        """Return ``fail`` for a permanent Vexora error, else the default decision."""
        if isinstance(exception, VexoraError) and not exception.task_retryable:
            return RetryDecision.fail(
                f"{type(exception).__name__} is {exception.permanence.value}-wide: no retry can fix it"
            )
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        """The policy has no settings; its type is all there is to store."""
        return {"__type": type(self).__name__}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> VexoraRetryPolicy:
        """Rebuild the policy (it has no settings)."""
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: The default ``retry_policy`` of this provider's operators that create payouts.
VEXORA_RETRY_POLICY = VexoraRetryPolicy()
