"""``LoopShared``: one value per event loop and key, closed when its last user leaves."""

from __future__ import annotations

import asyncio

from vexora_provider.hooks._shared import LoopShared


class Resource:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def shared() -> LoopShared[str, Resource]:
    return LoopShared(Resource.close)


class TestLoopShared:
    def test_users_of_one_key_share_one_value(self) -> None:
        pool = shared()

        async def main() -> None:
            async with pool.use("a", lambda: Resource("first")) as first:
                async with pool.use("a", lambda: Resource("second")) as second:
                    assert second is first
                    assert pool.users("a") == 2
                    async with pool.use("b", lambda: Resource("other")) as other:
                        assert other is not first
                assert first.closed == 0  # one user left
            assert first.closed == 1
            assert pool.users("a") == 0

        asyncio.run(main())

    def test_a_user_after_the_last_left_gets_a_fresh_value(self) -> None:
        pool = shared()

        async def main() -> tuple[Resource, Resource]:
            async with pool.use("a", lambda: Resource("1")) as one:
                pass
            async with pool.use("a", lambda: Resource("2")) as two:
                pass
            return one, two

        one, two = asyncio.run(main())
        assert (one.name, two.name, one.closed, two.closed) == ("1", "2", 1, 1)

    def test_event_loops_never_share(self) -> None:
        pool = shared()
        seen: list[Resource] = []

        async def hold() -> None:
            async with pool.use("a", lambda: Resource("x")) as value:
                seen.append(value)

        asyncio.run(hold())
        asyncio.run(hold())
        assert seen[0] is not seen[1]

    def test_concurrent_users_share_and_close_once(self) -> None:
        pool = shared()
        made: list[Resource] = []

        def make() -> Resource:
            made.append(Resource(str(len(made))))
            return made[-1]

        async def user() -> None:
            async with pool.use("a", make):
                await asyncio.sleep(0.01)

        async def main() -> None:
            await asyncio.gather(*(user() for _ in range(50)))

        asyncio.run(main())
        assert [(r.name, r.closed) for r in made] == [("0", 1)]
