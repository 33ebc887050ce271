import gc

from meterline.gc_startup import freeze_startup_objects


def test_startup_objects_are_left_out_of_later_collections() -> None:
    survivor = [object() for _ in range(100)]
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before + len(survivor)
    finally:
        gc.unfreeze()


def test_bulk_jobs_collect_less_often_and_give_the_thresholds_back() -> None:
    from meterline.gc_startup import fewer_collections

    before = gc.get_threshold()
    with fewer_collections(50_000):
        assert gc.get_threshold() == (50_000, *before[1:])
        with fewer_collections(50_000):  # a second job at the same time
            pass
        assert gc.get_threshold() == (50_000, *before[1:])  # the first one still runs
    assert gc.get_threshold() == before
