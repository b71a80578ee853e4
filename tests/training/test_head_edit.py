"""training/head_edit.py: which config.json extras record an edit of the exit heads."""

from epee_demo.model import folder as model_folder
from epee_demo.training.exit_temperature import RECORD_KEY as TEMPERATURE_RECORD
from epee_demo.training.head_edit import is_head_edit_record
from epee_demo.training.logit_offset import record_key


def test_both_edits_records_are_head_edit_records_and_nothing_else_is():
    assert is_head_edit_record(TEMPERATURE_RECORD) and TEMPERATURE_RECORD == model_folder.TEMPERATURES_KEY
    assert is_head_edit_record(record_key("negative"))
    assert is_head_edit_record(record_key("normal or benign"))
    assert not any(is_head_edit_record(key) for key in ("license", "title", "head_width", "logit_offset_grid"))
