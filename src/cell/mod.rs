//! L3: algorithms for shared cells over a [`Region`](crate::region::Region).

pub(crate) mod seqlock;
