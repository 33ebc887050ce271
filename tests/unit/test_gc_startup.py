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
