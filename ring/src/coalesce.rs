//! Gathering a stream's ready items into one message.

use futures::{FutureExt, Stream, StreamExt};

/// The items of `stream`, with every item that is ready at once folded into the one before it:
/// after an item that had to be waited for, `merge(&mut gathered, item)` is offered each item
/// already waiting, and takes it (returning `None`) or refuses it (returning it), in which case
/// the refused item starts the next message. Nothing waits that did not wait before, and order
/// is kept.
pub fn coalesce<S, T, M>(stream: S, merge: M) -> impl Stream<Item = T>
where
    S: Stream<Item = T> + Unpin,
    M: FnMut(&mut T, T) -> Option<T>,
{
    futures::stream::unfold(
        (stream, None::<T>, merge),
        |(mut stream, held, mut merge)| async move {
            let mut gathered = match held {
                Some(item) => item,
                None => stream.next().await?,
            };
            let mut next = None;
            // `now_or_never`: only what is there already; a pending poll leaves the stream
            // ready to be awaited for the next message.
            while let Some(Some(item)) = stream.next().now_or_never() {
                if let Some(refused) = merge(&mut gathered, item) {
                    next = Some(refused);
                    break;
                }
            }
            Some((gathered, (stream, next, merge)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_items_are_gathered_until_one_is_refused_and_order_is_kept() {
        // Numbers gather into a sum while they are positive; a negative starts a message and
        // takes nothing.
        let merge = |sum: &mut i32, n: i32| {
            if *sum >= 0 && n >= 0 {
                *sum += n;
                None
            } else {
                Some(n)
            }
        };
        let items = futures::stream::iter([1, 2, 3, -1, 4, 5, -2, -3, 6]);
        let out: Vec<i32> = futures::executor::block_on(coalesce(items, merge).collect());
        assert_eq!(out, [6, -1, 9, -2, -3, 6]);
        let empty = futures::stream::iter(Vec::<i32>::new());
        let out: Vec<i32> = futures::executor::block_on(coalesce(empty, merge).collect());
        assert!(out.is_empty());
    }
}
