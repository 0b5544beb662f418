"""The delivery step's background offset commit (pipelines/io.py OffsetCommitter), on the real broker:
offsets land in order and never go back, a refused commit is kept and retried (and readiness says
so), and stopping commits what is pending."""

from __future__ import annotations

import threading
import time

from kafka import TopicPartition

from connectors.kafka import make_consumer, make_producer
from core.outage import OUTAGES
from pipelines.io import COMMIT_DEPENDENCY, OffsetCommitter, commit_stats, finish_commits
from tests.harness import Stack


def committed(stack: Stack, partition: int) -> int | None:
    s = stack.settings
    reader = make_consumer(s, group_id=s.kafka.consumer_group)
    try:
        return reader.committed(TopicPartition(s.kafka.topics.fragments.name, partition))  # type: ignore[no-any-return]
    finally:
        reader.close()


def fill(stack: Stack, partition: int, n: int) -> None:
    producer = make_producer(stack.settings)
    for _ in range(n):
        producer.send(stack.settings.kafka.topics.fragments.name, value=b"{}", partition=partition)
    producer.flush()
    producer.close()


def test_offsets_land_in_order_and_never_go_back(stack: Stack) -> None:
    topic = stack.settings.kafka.topics.fragments.name
    fill(stack, 0, 50)
    committer = OffsetCommitter(stack.settings)
    landed: list[int] = []
    commit = committer._commit

    def watched(batch: dict[tuple[str, int], int]) -> bool:  # the real commit, with what it sent noted
        ok = commit(batch)
        landed.append(batch[(topic, 0)]) if ok and (topic, 0) in batch else None
        return ok

    committer._commit = watched  # type: ignore[method-assign]
    try:
        committer.submit({(topic, 0): 10})
        committer.submit({(topic, 0): 4})  # a bundle that finished later with an older offset
        assert committer.flush(30)
        assert committed(stack, 0) == 10

        # Many bundle threads handing over rising offsets at once: every commit that lands is at
        # least the one before it, and the last is the highest.
        def hand_over(start: int) -> None:
            for offset in range(start, 50, 4):
                committer.submit({(topic, 0): offset})

        threads = [threading.Thread(target=hand_over, args=(11 + i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert committer.flush(30)
        assert committed(stack, 0) == 49
        assert landed == sorted(landed) and landed[-1] == 49
        assert len(landed) < 1 + 39  # offsets handed over during a commit were coalesced into the next
        committer.submit({(topic, 0): 30})
        assert committer.flush(30) and committed(stack, 0) == 49
    finally:
        assert committer.close(30)


def test_a_refused_commit_is_kept_retried_and_reported_until_it_lands(stack: Stack) -> None:
    s = stack.settings
    topic = s.kafka.topics.fragments.name
    fill(stack, 1, 5)
    # A member of the same group with a subscription: the broker refuses commits from outside the
    # group's generation (CommitFailedError), which is not an outage but must not lose the offsets.
    member = make_consumer(s, group_id=s.kafka.consumer_group)
    member.subscribe([topic])
    # Joining takes the coordinator's initial rebalance delay, and longer on a loaded machine (once,
    # after a suite of pipeline tests, more than 30 s): wait generously, it is not what is tested.
    started = time.monotonic()
    while not member.assignment() and time.monotonic() - started < 90:
        member.poll(timeout_ms=500)
    assert member.assignment(), f"no assignment after {time.monotonic() - started:.0f} s"
    committer = OffsetCommitter(s, first_backoff_s=0.05, max_backoff_s=0.2)
    try:
        committer.submit({(topic, 1): 3})
        assert not committer.flush(2)
        assert committer.pending() == 1 and committer.failures >= 2
        assert COMMIT_DEPENDENCY in OUTAGES.current()  # /readyz: not ready while commits fail
        member.close()  # the group is empty again
        assert committer.flush(30)
        assert committed(stack, 1) == 3
        assert COMMIT_DEPENDENCY not in OUTAGES.current()
    finally:
        committer.close(10)
        OUTAGES.recovered(COMMIT_DEPENDENCY)


def test_stopping_commits_what_the_bundles_handed_over(stack: Stack) -> None:
    topic = stack.settings.kafka.topics.fragments.name
    fill(stack, 2, 8)
    finish_commits()
    committer = OffsetCommitter.shared(stack.settings)
    assert OffsetCommitter.shared(stack.settings) is committer  # one per broker and group in a process
    committer.submit({(topic, 2): 8})
    commits_before = commit_stats()[0]
    assert finish_commits(30)  # what supervisor.stop() and a resubmission call
    assert committed(stack, 2) == 8
    assert commits_before <= 1 and commit_stats() == (0, 0, 0)  # forgotten: the next job starts afresh
    committer.submit({(topic, 2): 9})  # a late bundle of the stopped job: dropped, its records are read again
    assert committer.pending() == 0 and committed(stack, 2) == 8
