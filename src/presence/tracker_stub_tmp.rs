//! TEMPORARY stub while the real tracker is written.
#![allow(missing_docs, unreachable_pub, dead_code)]
use std::collections::BTreeMap;
pub type Meta = serde_json::Map<String, serde_json::Value>;
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId { name: String, inc: u64 }
impl ReplicaId { pub fn new(name: &str, inc: u64) -> Self { Self { name: name.into(), inc } } }
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId { r: ReplicaId, id: u64 }
impl OwnerId { pub fn new(r: ReplicaId, id: u64) -> Self { Self { r, id } } }
#[derive(Debug, thiserror::Error)]
pub enum TrackError { #[error("already tracked")] AlreadyTracked, #[error("no presence")] NoPresence }
#[derive(Default, Debug, Clone)]
pub struct PresenceList(pub BTreeMap<String, Vec<Meta>>);
impl PresenceList { pub fn to_json(&self) -> serde_json::Value { serde_json::Value::Object(self.0.iter().map(|(k, v)| (k.clone(), serde_json::json!({"metas": v}))).collect()) } }
#[derive(Debug, Clone)]
pub struct Diff { pub topic: String, pub joins: PresenceList, pub leaves: PresenceList }
impl Diff { pub fn is_empty(&self) -> bool { self.joins.0.is_empty() && self.leaves.0.is_empty() } }
pub struct DiffBatch { d: Diff }
impl DiffBatch { pub fn new(t: &str) -> Self { Self { d: Diff { topic: t.into(), joins: PresenceList::default(), leaves: PresenceList::default() } } }
  pub fn push(&mut self, d: Diff) { for (k, v) in d.joins.0 { self.d.joins.0.entry(k).or_default().extend(v) } for (k, v) in d.leaves.0 { self.d.leaves.0.entry(k).or_default().extend(v) } }
  pub fn finish(self) -> Diff { self.d } }
pub struct Tracker { entries: Vec<(OwnerId, String, String, Meta)> }
impl Tracker {
  pub fn new(_r: ReplicaId) -> Self { Self { entries: vec![] } }
  fn one(topic: &str, key: &str, j: Option<Meta>, l: Option<Meta>) -> Diff { let mut d = Diff { topic: topic.into(), joins: Default::default(), leaves: Default::default() }; if let Some(m) = j { d.joins.0.insert(key.into(), vec![m]); } if let Some(m) = l { d.leaves.0.insert(key.into(), vec![m]); } d }
  pub fn track(&mut self, o: OwnerId, topic: &str, key: &str, mut meta: Meta, r: String) -> Result<Diff, TrackError> {
    if self.get(o.clone(), topic, key).is_some() { return Err(TrackError::AlreadyTracked) }
    meta.insert("phx_ref".into(), r.into()); self.entries.push((o, topic.into(), key.into(), meta.clone())); Ok(Self::one(topic, key, Some(meta), None)) }
  pub fn update(&mut self, o: OwnerId, topic: &str, key: &str, mut meta: Meta, r: String) -> Result<Diff, TrackError> {
    let e = self.entries.iter_mut().find(|e| e.0 == o && e.1 == topic && e.2 == key).ok_or(TrackError::NoPresence)?;
    let old = e.3.clone(); meta.insert("phx_ref".into(), r.into()); meta.insert("phx_ref_prev".into(), old["phx_ref"].clone()); e.3 = meta.clone(); Ok(Self::one(topic, key, Some(meta), Some(old))) }
  pub fn untrack(&mut self, o: OwnerId, topic: &str, key: &str) -> Diff {
    match self.entries.iter().position(|e| e.0 == o && e.1 == topic && e.2 == key) { Some(i) => { let e = self.entries.remove(i); Self::one(topic, key, None, Some(e.3)) } None => Self::one(topic, key, None, None) } }
  pub fn untrack_owner(&mut self, o: OwnerId) -> Vec<Diff> { let mut out = vec![]; while let Some(i) = self.entries.iter().position(|e| e.0 == o) { let e = self.entries.remove(i); out.push(Self::one(&e.1, &e.2, None, Some(e.3))) } out }
  pub fn get(&self, o: OwnerId, topic: &str, key: &str) -> Option<&Meta> { self.entries.iter().find(|e| e.0 == o && e.1 == topic && e.2 == key).map(|e| &e.3) }
  pub fn list(&self, topic: &str) -> PresenceList { let mut l = PresenceList::default(); for e in self.entries.iter().filter(|e| e.1 == topic) { l.0.entry(e.2.clone()).or_default().push(e.3.clone()) } l }
}
