//! What the diabetes examples share: the Pima Indians table and the course
//! notes' 8-6-4-1 sigmoid network.

use std::path::Path;

use kiln::data::{CsvTable, TensorDataset};
use kiln::{nn, ParamStore};

use crate::OrDie;

/// The shipped table: 768 rows, 8 numeric features, the `diabetes` column
/// as a 0/1 class target (class labels, so splits can be stratified by it).
pub fn table() -> TensorDataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pima-indians-diabetes/pima-indians-diabetes.csv");
    CsvTable::new(&path).target("diabetes").class_target(2).load().or_die("diabetes table")
}

/// 8-6-4-1 with sigmoid activations; the output is a probability.
pub fn net(store: &mut ParamStore) -> kiln::Result<nn::Sequential> {
    Ok(nn::Sequential::new()
        .add(nn::Linear::new(store, "fc1", 8, 6)?)
        .add(nn::Sigmoid)
        .add(nn::Linear::new(store, "fc2", 6, 4)?)
        .add(nn::Sigmoid)
        .add(nn::Linear::new(store, "fc3", 4, 1)?)
        .add(nn::Sigmoid))
}
