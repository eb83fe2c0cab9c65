"""The Vexora hook: signed payout creation, payout-status and balance queries, sync, async and in bulk.

The attempt driver lives in :mod:`._driver`, the create flow in :mod:`._create`, the request
shape and the reading of answers in
:mod:`._protocol`, the proxy and TLS settings in :mod:`._network`, the HTTP libraries in
:mod:`._transport`, the async session and bulk stream in :mod:`._session`; this module wires them
to an Airflow connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from vexora_provider.config import VexoraConfig
from vexora_provider.hooks import _retry
from vexora_provider.hooks._budget import BudgetPlan
from vexora_provider.hooks._budget_redis import async_budget, sync_budget
from vexora_provider.hooks._create import PayoutRequest, create_flow, lookup_call
from vexora_provider.hooks._driver import Driver, RetryRule
from vexora_provider.hooks._network import Network, network_for
from vexora_provider.hooks._protocol import (
    BALANCE_PATH,
    MAX_TRADE_NO_LENGTH,
    PAYOUT_STATUS_PATH,
    FetchStats,
    clean_trade_no,
    validate_trade_no,
)
from vexora_provider.hooks._runners import SyncRunner
from vexora_provider.hooks._session import DEFAULT_CONCURRENCY, VexoraAsyncSession
from vexora_provider.hooks._transport import (
    AiohttpSender,
    HttpxAsyncSender,
    HttpxSender,
    httpx_async_client,
    httpx_client,
    shared_aiohttp_sender,
)
from vexora_provider.lineage.hook import PayoutsLineage
from vexora_provider.models import Balance, PayoutQueryError, PayoutStatus

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "BALANCE_PATH",
    "DEFAULT_CONCURRENCY",
    "MAX_TRADE_NO_LENGTH",
    "PAYOUT_STATUS_PATH",
    "FetchStats",
    "VexoraAsyncSession",
    "VexoraHook",
    "validate_trade_no",
]

TEST_CONNECTION_TIMEOUT = 10.0

log = logging.getLogger(__name__)


class VexoraHook(BaseHook):
    """
    Create Vexora payouts, query their statuses and the merchant balance, with retries and a rate limit.

    The connection is resolved lazily (never in ``__init__``): :attr:`config` on the sync path,
    :meth:`aget_config` on the async path, which uses only Airflow's async connection APIs. Both
    paths take the same proxy (the ``proxy`` extra, else ``HTTPS_PROXY``/``HTTP_PROXY`` unless
    ``NO_PROXY`` names the host) and trust the same CAs (the ``ca_bundle`` extra, else
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's bundle). With the ``budget_storage`` extra,
    both paths take their requests from the merchant's budget shared through Redis
    (``max_in_flight``, ``requests_per_second``) instead of a per-hook rate limit.

    :param vexora_conn_id: the ``vexora`` connection to use.
    :param transport: sync httpx transport to send through instead of the network (tests).
    :param async_transport: async httpx transport instead of the default aiohttp sender.
    :param hook_lineage: report the merchant's payouts as read (status queries) or written
        (creates) to Airflow's hook lineage, once per hook, for OpenLineage; the provider's
        operators and sensor turn it off and report their own lineage.
    """

    conn_name_attr = "vexora_conn_id"
    default_conn_name = "vexora_default"
    conn_type = "vexora"
    hook_name = "Vexora"

    def __init__(
        self,
        vexora_conn_id: str = default_conn_name,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        hook_lineage: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vexora_conn_id = vexora_conn_id
        self._transport = transport
        self._async_transport = async_transport
        self.lineage = PayoutsLineage(self, enabled=hook_lineage)
        self._reported = False
        self.stats = FetchStats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vexora_conn_id={self.vexora_conn_id!r})"

    def _config_from(self, conn: Connection) -> VexoraConfig:
        return VexoraConfig.from_connection(conn, self.vexora_conn_id)

    @cached_property
    def config(self) -> VexoraConfig:
        """The validated connection (sync path; do not touch from an event loop)."""
        from airflow.sdk.log import mask_secret

        config = self._config_from(self.get_connection(self.vexora_conn_id))
        for password in _passwords(config):
            mask_secret(password)
        return config

    async def aget_config(self) -> VexoraConfig:
        """Resolve the connection with the async APIs only; shares :attr:`config`'s cache slot."""
        from airflow.sdk.log import amask_secret

        cached = self.__dict__.get("config")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        config = self._config_from(await self.aget_connection(self.vexora_conn_id))
        for password in _passwords(config):
            await amask_secret(password)
        self.__dict__["config"] = config
        return config

    def _network_for(self, config: VexoraConfig) -> Network:
        network = network_for(config)
        if not self._reported:
            # Once per hook (so once per task): where requests go and how times are read.
            self._reported = True
            plan = BudgetPlan.of(config)
            log.info(
                "Vexora connection %r: %s as merchant %s, %s; %s%s",
                self.vexora_conn_id,
                config.base_url,
                config.merchant_no,
                network.describe(),
                config.region_report(),
                f"; {plan.describe()}" if plan is not None else "",
            )
            warning = config.region_warning()
            if warning:
                log.warning("Vexora connection %r: %s", self.vexora_conn_id, warning)
            if not config.verify:
                log.warning(
                    "Vexora connection %r: TLS certificate verification is OFF (extra verify=false): "
                    "anyone on the network path can read and change payout data",
                    self.vexora_conn_id,
                )
        return network

    # sync -------------------------------------------------------------------------------------

    @cached_property
    def _network(self) -> Network:
        return self._network_for(self.config)

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx_client(self.config, self._network, transport=self._transport)

    @cached_property
    def _limiter(self) -> _retry.Limiter:
        plan = BudgetPlan.of(self.config)
        if plan is not None:
            return sync_budget(plan)
        return _retry.RateLimiter(self.config.requests_per_second)

    def _sync_driver(self, stats: FetchStats) -> Driver:
        # An injected transport goes nowhere near a proxy: errors must not name one.
        proxy = self._network.proxy if self._transport is None else None
        return Driver(config=self.config, stats=stats, proxy=proxy)

    @cached_property
    def _runner(self) -> SyncRunner:
        driver = self._sync_driver(self.stats)
        return SyncRunner(driver, HttpxSender(self._client, self.config), self._limiter)

    def get_payout_status(self, trade_no: str) -> PayoutStatus:
        """Return the status of one payout; raise a typed :class:`VexoraError` after retries."""
        trade_no = clean_trade_no(trade_no)
        runner = self._runner
        self.lineage.read(self.config.merchant_no)
        return runner.run(runner.driver.status_call(trade_no))

    def find_payout(self, trade_no: str) -> PayoutStatus | None:
        """Return the payout's status, or ``None`` when the gateway says it has no such payout."""
        trade_no = clean_trade_no(trade_no)
        runner = self._runner
        self.lineage.read(self.config.merchant_no)
        return runner.run(lookup_call(runner.driver, trade_no))

    def create_payout(
        self,
        *,
        trade_no: str,
        amount: Decimal | str,
        fields: Mapping[str, str],
        notify_url: str | None = None,
        remark: str | None = None,
    ) -> PayoutStatus:
        """
        Create one payout (``disbursements``), at most once per trade number, and return it.

        The trade number is queried first; a create is only sent when the gateway says it has no
        such payout, and a create whose outcome is unclear (timeout, dropped connection, 5xx, code
        5000) is settled by querying again before anything else is sent.

        :param trade_no: your unique key for this payout (at most 32 characters).
        :param amount: a ``Decimal`` or plain decimal text such as ``"1500.00"``, greater than
            zero; sent as exactly that decimal text.
        :param fields: the region's beneficiary fields (account, bank code, name …), all text,
            sent and signed as given.
        :param notify_url: where Vexora sends status callbacks.
        :param remark: free text kept with the payout.
        :raises VexoraPayoutExistsError: a payout with this trade number already exists; it is in
            the error's ``existing``, and nothing was sent.
        :raises VexoraInvalidPayoutError: an input is invalid; nothing was sent.
        :raises VexoraPayoutUnknownError: whether the payout exists could not be settled; nothing
            more was sent, and calling again is safe.
        """
        request = PayoutRequest.build(
            trade_no=trade_no, amount=amount, fields=fields, notify_url=notify_url, remark=remark
        )
        runner = self._runner
        self.lineage.read(self.config.merchant_no)
        status = runner.run_flow(create_flow(runner.driver, request))
        self.lineage.wrote(self.config.merchant_no)
        return status

    def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        runner = self._runner
        return runner.run(runner.driver.balance_call())

    def test_connection(self) -> tuple[bool, str]:
        """
        Query the balance once (read-only, own short timeout) and report what was found; never raises.

        With ``budget_storage`` set, the storage must answer a ping first: a connection whose
        budget cannot be used fails every task, so its test fails too.
        """
        try:
            config = self.config
            network = self._network
            plan = BudgetPlan.of(config)
            if plan is not None:
                sync_budget(plan).check()
            client = httpx_client(
                config, network, transport=self._transport, timeout_cap=TEST_CONNECTION_TIMEOUT
            )
            with client:
                driver = self._sync_driver(FetchStats())
                runner = SyncRunner(driver, HttpxSender(client, config), _retry.RateLimiter(None))
                # One try: a test must answer within the UI's patience, and says what failed.
                runner.run(driver.balance_call(rule=RetryRule(max_attempts=1)))
        except AirflowException as exc:  # a VexoraError, or e.g. the connection does not exist
            return False, f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # Unexpected: its text is not ours, so it is not repeated (it could hold anything).
            return False, f"unexpected {type(exc).__name__} while querying the balance"
        message = (
            f"Connected to {config.base_url} as merchant {config.merchant_no} (queryBalance OK, "
            f"{network.describe()}); {config.region_report()}"
        )
        if plan is not None:
            message += f"; {plan.describe()} (storage answers)"
        warning = config.region_warning()
        return True, f"{message}. Warning: {warning}" if warning else message

    def close(self) -> None:
        """Close the sync client, if one was opened."""
        client = self.__dict__.pop("_client", None)
        self.__dict__.pop("_runner", None)
        if client is not None:
            client.close()

    # async ------------------------------------------------------------------------------------

    def async_session(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        stats: FetchStats | None = None,
        share_pool: bool = False,
    ) -> AbstractAsyncContextManager[VexoraAsyncSession]:
        """
        Open one async sender (closed on exit) for many calls; ``concurrency`` sizes its pool.

        With ``share_pool``, every session of the running event loop on the same connection and
        ``concurrency`` shares one connection pool, closed when the last of them leaves (the
        triggers of a triggerer do this). The shared budget's Redis client is always shared so.
        """
        return self._async_session(concurrency=concurrency, stats=stats, share_pool=share_pool)

    @asynccontextmanager
    async def _async_session(
        self, *, concurrency: int, stats: FetchStats | None, share_pool: bool
    ) -> AsyncIterator[VexoraAsyncSession]:
        config = await self.aget_config()
        network = self._network_for(config)
        # Closed in reverse: the session's workers first (abandoned workers would fail on closed
        # connections), then the budget's client, then the connections.
        async with AsyncExitStack() as stack:
            send: HttpxAsyncSender | AiohttpSender
            if self._async_transport is not None:
                client = httpx_async_client(config, self._async_transport)
                stack.push_async_callback(client.aclose)
                send, proxy = HttpxAsyncSender(client, config), None
            elif share_pool:
                send = await stack.enter_async_context(
                    shared_aiohttp_sender(config=config, network=network, limit=max(1, concurrency))
                )
                proxy = network.proxy
            else:
                send = AiohttpSender(config=config, network=network, limit=max(1, concurrency))
                stack.push_async_callback(send.aclose)
                proxy = network.proxy
            plan = BudgetPlan.of(config)
            limiter = await stack.enter_async_context(async_budget(plan)) if plan is not None else None
            session = VexoraAsyncSession(
                config=config,
                send=send,
                proxy=proxy,
                concurrency=concurrency,
                stats=stats,
                limiter=limiter,
                lineage=self.lineage,
            )
            stack.push_async_callback(session.aclose)
            yield session

    async def aget_payout_status(self, trade_no: str) -> PayoutStatus:
        """Async :meth:`get_payout_status` in a one-call session (use a session for many)."""
        trade_no = clean_trade_no(trade_no)
        async with self.async_session(concurrency=1) as session:
            return await session.get_payout_status(trade_no)

    async def afind_payout(self, trade_no: str) -> PayoutStatus | None:
        """Async :meth:`find_payout`."""
        trade_no = clean_trade_no(trade_no)
        async with self.async_session(concurrency=1) as session:
            return await session.find_payout(trade_no)

    async def acreate_payout(
        self,
        *,
        trade_no: str,
        amount: Decimal | str,
        fields: Mapping[str, str],
        notify_url: str | None = None,
        remark: str | None = None,
    ) -> PayoutStatus:
        """Async :meth:`create_payout` (the same flow, on the event loop)."""
        request = PayoutRequest.build(
            trade_no=trade_no, amount=amount, fields=fields, notify_url=notify_url, remark=remark
        )
        async with self.async_session(concurrency=1) as session:
            return await session.create_payout(request)

    async def aget_balance(self) -> Balance:
        """Async :meth:`get_balance`."""
        async with self.async_session(concurrency=1) as session:
            return await session.get_balance()

    async def astream_payout_statuses(
        self,
        trade_nos: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        stats: FetchStats | None = None,
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        """Open a session and yield every trade's result as it completes (see the session method)."""
        async with self.async_session(concurrency=concurrency, stats=stats) as session:
            async for item in session.stream_payout_statuses(trade_nos, concurrency=concurrency):
                yield item


def _passwords(config: VexoraConfig) -> list[str]:
    """The passwords a connection holds besides the app secret: the proxy's and the budget storage's."""
    found = [config.proxy.password if config.proxy else None]
    found.append(config.budget_storage.password if config.budget_storage else None)
    return [password for password in found if password]
