//! A few writes to a single Kafka broker, for tests and local tooling: create a topic, append
//! records, commit a consumer group's offset. Not used by the reader.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::wire::{Connection, Security};
use crate::error::ReadError;

/// A plain-text connection to one broker that also coordinates every group (a single-node
/// cluster, like the test bed's).
pub struct KafkaAdmin {
    conn: Connection,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

impl KafkaAdmin {
    /// Connects to `endpoint` (`host:port`, a PLAINTEXT listener).
    pub async fn connect(endpoint: &str) -> Result<KafkaAdmin, ReadError> {
        let timeout = Duration::from_secs(10);
        let conn = Connection::open(endpoint, &Security::default(), timeout, timeout)
            .await
            .map_err(|e| ReadError::Source(e.to_string()))?;
        Ok(KafkaAdmin { conn })
    }

    fn fail(&self, message: String) -> ReadError {
        ReadError::Source(format!("kafka {}: {message}", self.conn.endpoint()))
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub async fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<(), ReadError> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let answer = self
            .conn
            .call(&request, 5)
            .await
            .map_err(|e| ReadError::Source(e.to_string()))?;
        for t in &answer.topics {
            if let Some(e) = t.error_code.err() {
                return Err(self.fail(format!("creating topic {topic:?}: {e}")));
            }
        }
        Ok(())
    }

    /// Appends `count` records to `topic`/`partition`; retries while the new partition has no
    /// leader yet. Returns the log-end offset after the append.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        count: usize,
    ) -> Result<i64, ReadError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // One batch: the encoder keeps records together while offset − sequence holds;
                // the first is -1 (no idempotent producer).
                sequence: i as i32 - 1,
                timestamp: now_ms,
                key: None,
                value: Some(Bytes::from(format!("record {i}"))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, &records, &options)
            .map_err(|e| self.fail(format!("encoding records: {e}")))?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]);
        for _ in 0..50 {
            let answer = self
                .conn
                .call(&request, 8)
                .await
                .map_err(|e| ReadError::Source(e.to_string()))?;
            let p = answer
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .ok_or_else(|| self.fail("empty produce answer".into()))?;
            match p.error_code.err() {
                None => return Ok(p.base_offset + count as i64),
                Some(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(e) => {
                    let said = p.error_message.as_deref().unwrap_or_default();
                    return Err(self.fail(format!("producing to {topic}/{partition}: {e} {said}")));
                }
            }
        }
        Err(self.fail(format!("{topic}/{partition} never got a leader")))
    }

    /// Commits `offset` for `group` on `topic`/`partition` (as a group with no members).
    pub async fn commit(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), ReadError> {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset),
                    ]),
            ]);
        // Asking for the coordinator makes the broker create its offsets topic on first use.
        let find = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        for _ in 0..100 {
            let found = self
                .conn
                .call(&find, 3)
                .await
                .map_err(|e| ReadError::Source(e.to_string()))?;
            if found.error_code.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let answer = self
                .conn
                .call(&request, 8)
                .await
                .map_err(|e| ReadError::Source(e.to_string()))?;
            let code = answer
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .map(|p| p.error_code)
                .unwrap_or_default();
            match code.err() {
                None => return Ok(()),
                Some(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(e) => {
                    return Err(
                        self.fail(format!("committing {group:?} on {topic}/{partition}: {e}"))
                    );
                }
            }
        }
        Err(self.fail(format!("the coordinator of {group:?} never got ready")))
    }
}
