-- One number per hold of the corpus lock (`corpus::lock`): the dedupe job
-- plans its next chunk while the current one writes, and takes that plan
-- only when the next hold of the lock is its own, right after (no other
-- writer changed the corpus the plan read). A sequence, so taking a number
-- never waits and leaves no dead row.
CREATE SEQUENCE corpus_epoch;
