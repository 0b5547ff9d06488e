//! `tokenlake_errors_total`, counted where a status leaves the server: a tower layer that reads
//! `grpc-status` from every response's headers (a call that failed before its first message)
//! and from its trailers (a stream that ended with an error). Counting where a status is built
//! would count statuses that were dropped, or turned into a background job's message, and miss
//! those tonic and the interceptors build themselves.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The layer the server stacks over every service.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentErrorsLayer;

impl<S> tower_layer::Layer<S> for SentErrorsLayer {
    type Service = SentErrors<S>;

    fn layer(&self, inner: S) -> SentErrors<S> {
        SentErrors { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SentErrors<S> {
    inner: S,
}

impl<S, Req, B> tower_service::Service<http::Request<Req>> for SentErrors<S>
where
    S: tower_service::Service<http::Request<Req>, Response = http::Response<B>>,
{
    type Response = http::Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, fn(http::Response<B>) -> Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Req>) -> Self::Future {
        use futures::TryFutureExt;
        self.inner.call(request).map_ok(count_headers)
    }
}

fn count_headers<B>(response: http::Response<B>) -> http::Response<CountedBody<B>> {
    count(response.headers());
    response.map(|inner| CountedBody { inner })
}

/// Counts the status in `headers` when it is an error.
fn count(headers: &HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    let code = tonic::Code::from_i32(code);
    if code != tonic::Code::Ok {
        metrics::counter!("tokenlake_errors_total", "code" => format!("{code:?}")).increment(1);
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts the status in its trailers.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = self.project().inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            count(trailers);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
