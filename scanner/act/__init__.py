"""Acting on verdicts: plan (what would be done) and apply (journaled, resumable, undoable)."""
