//! Planning: a budget to chunk geometry and a worker count per record. (Being written.)
