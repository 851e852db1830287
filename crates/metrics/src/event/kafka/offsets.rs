//! Reading a consumer group's offsets from the brokers: Metadata (partitions and leaders),
//! FindCoordinator and OffsetFetch (the committed offsets, from the group's coordinator), and
//! ListOffsets (log-end, and log-start when needed, from each partition's leader).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::lag::PartitionOffsets;
use super::wire::{Connection, Security, WireError};

/// ListOffsets timestamps: the log-end and log-start offsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// What to read: the group, its topic (or all its topics), some partitions only.
pub(crate) struct Query<'a> {
    pub(crate) group: &'a str,
    pub(crate) topic: Option<&'a str>,
    pub(crate) partitions: Option<&'a [i32]>,
    /// Read the log-start offsets of partitions without a committed offset.
    pub(crate) need_earliest: bool,
}

/// Connections to the brokers of one cluster during one read, by `host:port`.
pub(crate) struct Brokers {
    security: Security,
    connect_timeout: Duration,
    io_timeout: Duration,
    bootstrap: String,
    open: BTreeMap<String, Connection>,
    /// Node id → `host:port`, from Metadata.
    nodes: BTreeMap<i32, String>,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

impl Brokers {
    /// Connects to the first of `servers` that answers (the last error when none does).
    pub(crate) async fn connect(
        servers: &[String],
        security: Security,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Brokers, WireError> {
        let mut last = None;
        for server in servers {
            match Connection::open(server, &security, connect_timeout, io_timeout).await {
                Ok(conn) => {
                    let mut open = BTreeMap::new();
                    open.insert(server.clone(), conn);
                    return Ok(Brokers {
                        security,
                        connect_timeout,
                        io_timeout,
                        bootstrap: server.clone(),
                        open,
                        nodes: BTreeMap::new(),
                    });
                }
                // A refused login is the same on every broker: say it at once.
                Err(e @ WireError::Login { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| WireError::Connect {
            endpoint: "kafka".into(),
            message: "no bootstrap server".into(),
        }))
    }

    /// The connection to `endpoint`, opened on first use.
    async fn at(&mut self, endpoint: &str) -> Result<&mut Connection, WireError> {
        if !self.open.contains_key(endpoint) {
            let conn = Connection::open(
                endpoint,
                &self.security,
                self.connect_timeout,
                self.io_timeout,
            )
            .await?;
            self.open.insert(endpoint.to_owned(), conn);
        }
        self.open
            .get_mut(endpoint)
            .ok_or_else(|| WireError::Connect {
                endpoint: endpoint.to_owned(),
                message: "connection lost".into(),
            })
    }

    async fn bootstrap(&mut self) -> Result<&mut Connection, WireError> {
        let endpoint = self.bootstrap.clone();
        self.at(&endpoint).await
    }

    /// Every partition of the query with its offsets.
    pub(crate) async fn offsets(
        &mut self,
        query: &Query<'_>,
    ) -> Result<Vec<PartitionOffsets>, WireError> {
        let coordinator = self.coordinator(query.group).await?;
        let topics: Vec<String> = match query.topic {
            Some(t) => vec![t.to_owned()],
            None => self
                .committed(&coordinator, query.group, None)
                .await?
                .into_keys()
                .map(|(t, _)| t)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let leaders = self.leaders(&topics, query.partitions).await?;
        let wanted: Vec<(String, i32)> = leaders.keys().cloned().collect();
        let committed = self
            .committed(&coordinator, query.group, Some(&wanted))
            .await?;
        let latest = self.list_offsets(&leaders, LATEST).await?;
        let mut out: Vec<PartitionOffsets> = latest
            .into_iter()
            .map(|((topic, partition), latest)| PartitionOffsets {
                committed: committed.get(&(topic.clone(), partition)).copied(),
                topic,
                partition,
                latest,
                earliest: None,
            })
            .collect();
        if query.need_earliest {
            let uncommitted: BTreeMap<(String, i32), i32> = leaders
                .into_iter()
                .filter(|(k, _)| !committed.contains_key(k))
                .collect();
            let earliest = self.list_offsets(&uncommitted, EARLIEST).await?;
            for p in &mut out {
                p.earliest = earliest.get(&(p.topic.clone(), p.partition)).copied();
            }
        }
        Ok(out)
    }

    /// The group coordinator's `host:port`.
    async fn coordinator(&mut self, group: &str) -> Result<String, WireError> {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let conn = self.bootstrap().await?;
        let answer = conn.call(&request, 3).await?;
        if let Some(e) = answer.error_code.err() {
            let said = answer.error_message.as_deref().unwrap_or_default();
            return Err(conn.broker_error(format!(
                "no coordinator for consumer group {group:?}: {e} {said}"
            )));
        }
        Ok(format!("{}:{}", answer.host.as_str(), answer.port))
    }

    /// Partition → leader's `host:port` for `topics` (only `partitions` when given).
    async fn leaders(
        &mut self,
        topics: &[String],
        partitions: Option<&[i32]>,
    ) -> Result<BTreeMap<(String, i32), i32>, WireError> {
        let request = MetadataRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect(),
        ));
        let conn = self.bootstrap().await?;
        let answer = conn.call(&request, 9).await?;
        for b in &answer.brokers {
            self.nodes
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        let conn = self.bootstrap().await?;
        let mut out = BTreeMap::new();
        for t in &answer.topics {
            let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if let Some(e) = t.error_code.err() {
                return Err(conn.broker_error(format!("topic {topic:?}: {e}")));
            }
            for p in &t.partitions {
                if partitions.is_some_and(|only| !only.contains(&p.partition_index)) {
                    continue;
                }
                out.insert((topic.clone(), p.partition_index), p.leader_id.0);
            }
        }
        Ok(out)
    }

    /// The group's committed offsets (of `wanted` partitions, or of every partition it has).
    async fn committed(
        &mut self,
        coordinator: &str,
        group: &str,
        wanted: Option<&[(String, i32)]>,
    ) -> Result<BTreeMap<(String, i32), i64>, WireError> {
        let topics = wanted.map(|w| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in w {
                by_topic.entry(t).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(topics);
        let conn = self.at(coordinator).await?;
        let answer = conn.call(&request, 7).await?;
        if let Some(e) = answer.error_code.err() {
            return Err(conn.broker_error(format!("offsets of consumer group {group:?}: {e}")));
        }
        let mut out = BTreeMap::new();
        for t in &answer.topics {
            for p in &t.partitions {
                if let Some(e) = p.error_code.err() {
                    return Err(conn.broker_error(format!(
                        "offset of consumer group {group:?} on {}/{}: {e}",
                        t.name.0.as_str(),
                        p.partition_index
                    )));
                }
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// The offsets at `timestamp` (LATEST or EARLIEST) of `partitions` (partition → leader id),
    /// asking each leader for its own.
    async fn list_offsets(
        &mut self,
        partitions: &BTreeMap<(String, i32), i32>,
        timestamp: i64,
    ) -> Result<BTreeMap<(String, i32), i64>, WireError> {
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for ((t, p), leader) in partitions {
            by_leader
                .entry(*leader)
                .or_default()
                .entry(t)
                .or_default()
                .push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let endpoint = self
                .nodes
                .get(&leader)
                .cloned()
                .ok_or_else(|| WireError::Broker {
                    endpoint: self.bootstrap.clone(),
                    message: format!("partition leader {leader} is unknown or unavailable"),
                })?;
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(name(t))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let conn = self.at(&endpoint).await?;
            let answer = conn.call(&request, 6).await?;
            for t in &answer.topics {
                for p in &t.partitions {
                    if let Some(e) = p.error_code.err() {
                        return Err(conn.broker_error(format!(
                            "offsets of {}/{}: {e}",
                            t.name.0.as_str(),
                            p.partition_index
                        )));
                    }
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }
}
