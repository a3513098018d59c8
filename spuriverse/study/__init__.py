"""Studies over many training runs: `spuriverse study finetune`, the held-out fine-tuning study of the
SpuriVerse paper (splits over correlations per seed, one `spuriverse train` + `spuriverse eval` per
cell, a resumable grid, a summary over seeds). A layer above train and eval, below the leaderboard."""

from spuriverse.study.plan import StudyOptions
from spuriverse.study.runner import (
    StudyConfigMismatch,
    StudyIncomplete,
    list_cells,
    prepare,
    run_cell,
    run_study,
    write_summary,
)
from spuriverse.study.splits import StudyDataError

__all__ = ["StudyConfigMismatch", "StudyDataError", "StudyIncomplete", "StudyOptions", "list_cells", "prepare",
           "run_cell", "run_study", "write_summary"]
