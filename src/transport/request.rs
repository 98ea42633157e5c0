//! [`Request`]: what a transport sends, and the one place each kind is written to a redis-rs
//! connection (async or blocking).

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Connection, FromRedisValue, Pipeline, RedisResult, Value};

/// A request a transport may send twice: on a connection that turns out dead it is retried
/// once (see [`super::retry`]).
#[derive(Clone, Copy)]
pub enum Request<'a> {
    Cmd(&'a Cmd),
    Pipeline(&'a Pipeline),
    /// Several pipelines sent back to back on one connection without waiting between them,
    /// so the server works on one while the next is encoded and the last one's replies are
    /// parsed. The replies, in order, form one array (as if it were one pipeline).
    Pipelines(&'a [Pipeline]),
}

impl Request<'_> {
    /// Send on an async multiplexed connection and convert the reply. Several pipelines go
    /// out on clones of the connection (the same socket, so in order), all in flight at once.
    pub(crate) async fn send<T: FromRedisValue>(self, conn: &mut MultiplexedConnection) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipeline(pipe) => pipe.query_async(conn).await,
            Request::Pipelines(pipes) => joined(
                futures_util::future::try_join_all(pipes.iter().map(|pipe| {
                    let mut conn = conn.clone();
                    async move { pipe.query_async::<Value>(&mut conn).await }
                }))
                .await?,
            ),
        }
    }

    /// Send on a blocking connection, on the calling thread, and convert the reply.
    pub(crate) fn send_blocking<T: FromRedisValue>(self, conn: &mut Connection) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query(conn),
            Request::Pipeline(pipe) => pipe.query(conn),
            Request::Pipelines(pipes) => joined(
                pipes
                    .iter()
                    .map(|pipe| pipe.query::<Value>(conn))
                    .collect::<RedisResult<Vec<_>>>()?,
            ),
        }
    }
}

/// The reply arrays of several pipelines joined into one, converted.
pub(super) fn joined<T: FromRedisValue>(replies: Vec<Value>) -> RedisResult<T> {
    let joined = replies
        .into_iter()
        .flat_map(|reply| match reply {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect();
    Ok(T::from_redis_value(Value::Array(joined))?)
}
