//! Deciding, in memory, where each row of a dedupe chunk goes: into an
//! existing contact, into a new one, or to a reviewer.
//!
//! The plan sees the corpus contacts that share a blocking key with the
//! chunk (loaded under the corpus lock) and everything the chunk itself has
//! created or merged so far, so two rows of one contact in one run make one
//! contact. Rows are placed in row order and candidates compared in id
//! order, with ties going to the lowest id: the same input always gives the
//! same merges.
//!
//! Merges do not chain: a row joins a contact only when no record already
//! in it strongly disagrees with the row (A = B and B = C with A and C
//! clearly two people sends C to a reviewer, rather than merging all three).

use crate::parallel;
use bizcontacts_matching::{model, BlockId, Explanation, Keyed, Matcher, Prepared, Verdict};
use bizcontacts_store::corpus::{ChunkWrites, Contact, Link, PendingRow, Possible};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// A contact as the plan knows it: its values and what it was built from.
struct Working {
    contact: Contact,
    /// Records a row is scored against (the best one counts): the current
    /// values, plus every row merged in this chunk.
    members: Vec<Prepared>,
    created: bool,
    changed: bool,
}

/// A record of the contact that says P < 0.01 for the row strongly
/// disagrees: the row is another person, whatever the others say.
static VETO: std::sync::LazyLock<f32> = std::sync::LazyLock::new(|| model::weight_of(0.01));

pub struct Plan {
    matcher: Matcher,
    /// Keys filed under more contacts than this find no candidates.
    cap: usize,
    /// Keys skipped for that reason, counted once each.
    capped: BTreeSet<BlockId>,
    contacts: HashMap<Uuid, Working>,
    index: HashMap<BlockId, BTreeSet<Uuid>>,
    links: Vec<Link>,
    keys: Vec<(BlockId, Uuid)>,
    possible: Vec<Possible>,
    created_order: Vec<Uuid>,
    /// Tombstones of erased contacts by key: a row sharing one waits for a
    /// reviewer (`bizcontacts_store::erasure`).
    erased: HashMap<BlockId, Uuid>,
}

/// Where the plan put a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Merged,
    Created,
    /// Waiting for a reviewer.
    Possible,
}

impl Plan {
    /// `corpus`: the contacts the chunk may join; `keys`: their (key, id)
    /// pairs; `capped`: keys the lookup found over `cap` and left out.
    pub fn new(
        matcher: Matcher,
        cap: usize,
        corpus: Vec<Contact>,
        keys: Vec<(BlockId, Uuid)>,
        capped: Vec<BlockId>,
    ) -> Self {
        let mut plan = Plan {
            matcher,
            cap,
            capped: capped.into_iter().collect(),
            contacts: HashMap::with_capacity(corpus.len()),
            index: HashMap::with_capacity(keys.len()),
            links: vec![],
            keys: vec![],
            possible: vec![],
            created_order: vec![],
            erased: HashMap::new(),
        };
        let prepared = parallel::map(&corpus, |c| Prepared::new(&c.values.record()));
        for (c, p) in corpus.into_iter().zip(prepared) {
            let members = vec![p];
            plan.contacts.insert(
                c.id,
                Working {
                    contact: c,
                    members,
                    created: false,
                    changed: false,
                },
            );
        }
        for (k, id) in keys {
            if plan.contacts.get(&id).is_some_and(|w| w.contact.active) {
                plan.index.entry(k).or_default().insert(id);
            }
        }
        plan
    }

    /// The erased contacts' keys the chunk's rows may hit.
    pub fn with_erased(mut self, erased: Vec<(BlockId, Uuid)>) -> Self {
        self.erased.extend(erased);
        self
    }

    /// Place one row (`keyed` from its values). `target`: the contact it
    /// must join (a correction, or a reviewer's "same"); `excluded`: contacts
    /// a reviewer said it is not.
    pub fn place(
        &mut self,
        row: &PendingRow,
        keyed: Keyed,
        target: Option<Uuid>,
        excluded: &[Uuid],
        correction: bool,
    ) -> Placed {
        let Keyed {
            prepared,
            block_ids: keys,
            tombstone_ids,
        } = keyed;
        if let Some(t) = target.filter(|t| self.contacts.contains_key(t)) {
            self.merge(row, t, prepared, keys, correction, None);
            return Placed::Merged;
        }
        // Someone erased at their request, imported again: a reviewer looks
        // first (score 0: nothing is left to compare with). A reviewer's
        // "different" lets the row through.
        if let Some(erased) = tombstone_ids
            .iter()
            .filter_map(|k| self.erased.get(k))
            .find(|e| !excluded.contains(e))
        {
            self.possible.push(Possible {
                row: row.id,
                contact: *erased,
                score: 0.0,
                why: None,
            });
            return Placed::Possible;
        }
        let mut candidates = BTreeSet::new();
        for k in &keys {
            let Some(ids) = self.index.get(k) else {
                continue;
            };
            if ids.len() > self.cap {
                self.capped.insert(*k);
                continue;
            }
            candidates.extend(ids.iter().filter(|id| !excluded.contains(id)).copied());
        }
        let mut best: Option<(f32, Uuid, usize)> = None;
        let mut possible = vec![];
        for id in candidates {
            let w = &self.contacts[&id];
            let (mut top, mut at, mut worst) = (f32::MIN, 0, f32::MAX);
            for (i, m) in w.members.iter().enumerate() {
                let s = self.matcher.score(&prepared, m);
                if s > top {
                    (top, at) = (s, i);
                }
                worst = worst.min(s);
            }
            match self.matcher.verdict(top) {
                // Some record of the contact says clearly "another person":
                // a reviewer decides rather than the chain.
                Verdict::Same if worst < *VETO => possible.push((row.id, id, top, at)),
                Verdict::Same if best.is_none_or(|(b, _, _)| top > b) => best = Some((top, id, at)),
                Verdict::Possible => possible.push((row.id, id, top, at)),
                _ => {}
            }
        }
        if let Some((_, id, at)) = best {
            let why = self
                .matcher
                .explain(&prepared, &self.contacts[&id].members[at]);
            self.merge(row, id, prepared, keys, correction, Some(why));
            return Placed::Merged;
        }
        let possible: Vec<_> = possible
            .into_iter()
            .map(|(row, contact, score, at)| Possible {
                row,
                contact,
                score,
                why: Some(
                    self.matcher
                        .explain(&prepared, &self.contacts[&contact].members[at]),
                ),
            })
            .collect();
        if !possible.is_empty() {
            self.possible.extend(possible);
            return Placed::Possible;
        }
        // A new contact takes its first row's id: a re-run could not create
        // a second contact for the same row even if it tried.
        let id = row.id;
        let mut contact = Contact::new(id);
        contact
            .values
            .absorb(&row.values, correction, &mut contact.corrected_fields);
        self.contacts.insert(
            id,
            Working {
                contact,
                members: vec![],
                created: true,
                changed: false,
            },
        );
        self.created_order.push(id);
        self.file(id, prepared, keys);
        self.links.push(Link {
            row: row.id,
            contact: id,
            created: true,
            why: None,
        });
        Placed::Created
    }

    fn merge(
        &mut self,
        row: &PendingRow,
        id: Uuid,
        prepared: Prepared,
        keys: Vec<BlockId>,
        correction: bool,
        why: Option<Explanation>,
    ) {
        let w = self.contacts.get_mut(&id).expect("merge target is known");
        let c = &mut w.contact;
        // A row that repeats what the contact holds rewrites nothing: an
        // UPDATE of a contact is a new row version in seven indexes.
        w.changed |= c
            .values
            .absorb(&row.values, correction, &mut c.corrected_fields);
        // A correction names one field of a known contact: it adds no key.
        if !correction {
            self.file(id, prepared, keys);
        }
        self.links.push(Link {
            row: row.id,
            contact: id,
            created: false,
            why,
        });
    }

    fn file(&mut self, id: Uuid, prepared: Prepared, keys: Vec<BlockId>) {
        for k in keys {
            if self.index.entry(k).or_default().insert(id) {
                self.keys.push((k, id));
            }
        }
        self.contacts
            .get_mut(&id)
            .expect("filed contact is known")
            .members
            .push(prepared);
    }

    /// Keys left out for being over the cap so far.
    pub fn capped(&self) -> usize {
        self.capped.len()
    }

    /// What to write for the chunk.
    pub fn into_writes(mut self) -> ChunkWrites {
        let created = self
            .created_order
            .iter()
            .map(|id| self.contacts[id].contact.clone())
            .collect();
        let mut updated: Vec<Contact> = self
            .contacts
            .drain()
            .filter(|(_, w)| w.changed && !w.created)
            .map(|(_, w)| w.contact)
            .collect();
        updated.sort_by_key(|c| c.id);
        ChunkWrites {
            created,
            updated,
            keys: self.keys,
            links: self.links,
            possible: self.possible,
        }
    }
}
