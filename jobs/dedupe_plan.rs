//! Deciding, in memory, where each row of a dedupe chunk goes: into an
//! existing contact, into a new one, or to a reviewer.
//!
//! The plan sees the corpus contacts that share a blocking key with the
//! chunk (loaded under the corpus lock) and everything the chunk itself has
//! created or merged so far, so two rows of one contact in one run make one
//! contact. Rows are placed in row order and candidates compared in id
//! order, with ties going to the lowest id: the same input always gives the
//! same merges.

use bizcontacts_matching::{score, BlockId, Prepared, Thresholds, Verdict};
use bizcontacts_store::corpus::{ChunkWrites, Contact, PendingRow};
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

pub struct Plan {
    thresholds: Thresholds,
    contacts: HashMap<Uuid, Working>,
    index: HashMap<BlockId, BTreeSet<Uuid>>,
    links: Vec<(Uuid, Uuid, bool)>,
    keys: Vec<(BlockId, Uuid)>,
    possible: Vec<(Uuid, Uuid, f32)>,
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
    /// `corpus`: the contacts the chunk may join; `keys`: their (key, id) pairs.
    pub fn new(thresholds: Thresholds, corpus: Vec<Contact>, keys: Vec<(BlockId, Uuid)>) -> Self {
        let mut plan = Plan {
            thresholds,
            contacts: HashMap::with_capacity(corpus.len()),
            index: HashMap::with_capacity(keys.len()),
            links: vec![],
            keys: vec![],
            possible: vec![],
            created_order: vec![],
            erased: HashMap::new(),
        };
        for c in corpus {
            let members = vec![Prepared::new(&c.values.record())];
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

    /// Place one row (`prepared` from its values). `target`: the contact it
    /// must join (a correction, or a reviewer's "same"); `excluded`: contacts
    /// a reviewer said it is not.
    pub fn place(
        &mut self,
        row: &PendingRow,
        prepared: Prepared,
        target: Option<Uuid>,
        excluded: &[Uuid],
        correction: bool,
    ) -> Placed {
        let keys = prepared.block_ids();
        if let Some(t) = target.filter(|t| self.contacts.contains_key(t)) {
            self.merge(row, t, prepared, keys, correction);
            return Placed::Merged;
        }
        // Someone erased at their request, imported again: a reviewer looks
        // first (score 0: nothing is left to compare with). A reviewer's
        // "different" lets the row through.
        if let Some(erased) = keys
            .iter()
            .filter_map(|k| self.erased.get(k))
            .find(|e| !excluded.contains(e))
        {
            self.possible.push((row.id, *erased, 0.0));
            return Placed::Possible;
        }
        let candidates: BTreeSet<Uuid> = keys
            .iter()
            .filter_map(|k| self.index.get(k))
            .flatten()
            .filter(|id| !excluded.contains(id))
            .copied()
            .collect();
        let mut best: Option<(f32, Uuid)> = None;
        let mut possible = vec![];
        for id in candidates {
            let w = &self.contacts[&id];
            let s = w
                .members
                .iter()
                .map(|m| score(&prepared, m))
                .fold(f32::MIN, f32::max);
            match self.thresholds.verdict(s) {
                Verdict::Same if best.is_none_or(|(b, _)| s > b) => best = Some((s, id)),
                Verdict::Possible => possible.push((row.id, id, s)),
                _ => {}
            }
        }
        if let Some((_, id)) = best {
            self.merge(row, id, prepared, keys, correction);
            return Placed::Merged;
        }
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
        self.links.push((row.id, id, true));
        Placed::Created
    }

    fn merge(
        &mut self,
        row: &PendingRow,
        id: Uuid,
        prepared: Prepared,
        keys: Vec<BlockId>,
        correction: bool,
    ) {
        let w = self.contacts.get_mut(&id).expect("merge target is known");
        let c = &mut w.contact;
        c.values
            .absorb(&row.values, correction, &mut c.corrected_fields);
        w.changed = true;
        // A correction names one field of a known contact: it adds no key.
        if !correction {
            self.file(id, prepared, keys);
        }
        self.links.push((row.id, id, false));
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
