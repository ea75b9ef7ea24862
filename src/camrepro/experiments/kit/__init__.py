"""The plumbing chapters share, written once: images from parameters (:mod:`.images`), the map store
(:mod:`.maps`), predictions (:mod:`.predictions`), per-image metric tables (:mod:`.metric_tables`) and paired
timing (:mod:`.timing`)."""
