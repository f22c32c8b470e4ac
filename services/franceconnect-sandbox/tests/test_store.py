"""Transient state: entries expire after their TTL, and ``take`` gives a value once."""

from __future__ import annotations

from paraphe_franceconnect_sandbox.store import TransientStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_ttl_then_is_gone() -> None:
    clock = Clock()
    store: TransientStore[str] = TransientStore(60, clock)
    key = store.add("valeur")
    clock.now += 59.9
    assert store.get(key) == "valeur"
    clock.now += 0.1
    assert store.get(key) is None
    assert store.take(key) is None


def test_take_gives_a_value_once() -> None:
    store: TransientStore[str] = TransientStore(60, Clock())
    key = store.add("code")
    assert store.take(key) == "code"
    assert store.take(key) is None
    assert store.get(key) is None


def test_keys_are_unguessable_and_distinct() -> None:
    store: TransientStore[int] = TransientStore(60, Clock())
    keys = {store.add(n) for n in range(1000)}
    assert len(keys) == 1000
    assert all(len(key) >= 43 for key in keys)


def test_expired_entries_are_forgotten_as_new_ones_arrive() -> None:
    clock = Clock()
    store: TransientStore[int] = TransientStore(60, clock)
    for n in range(100_000):
        store.add(n)
    clock.now += 61
    store.add(-1)
    assert len(store) == 1


def test_put_replaces_and_restarts_the_ttl() -> None:
    clock = Clock()
    store: TransientStore[str] = TransientStore(60, clock)
    store.put("clé", "ancienne")
    clock.now += 30
    store.put("clé", "nouvelle")
    clock.now += 40
    assert store.get("clé") == "nouvelle"
