//! Checkpoints: a network's parameters in a safetensors file, with string metadata (spec,
//! hyperparameters), loadable by PyTorch (`safetensors.torch.load_file`) into `torch.nn` layers.
//!
//! Tensors are named `"{i}.weight"` / `"{i}.bias"` (see [`Network::param_names`]), dtype F32, PyTorch
//! layouts, little-endian. Files are written atomically ([`crate::atomic`]): a reader never sees a partial file and a failed
//! write leaves the previous file in place.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::network::Network;
use crate::read::read_up_to;
use crate::tensor::Tensor;

/// Why a checkpoint (or any safetensors input) was refused. Messages name the file and the tensor.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: cannot read: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: cannot write: {source}", file.display())]
    Write { file: PathBuf, source: std::io::Error },
    #[error("{}: not a safetensors file: {problem}", file.display())]
    Format { file: PathBuf, problem: String },
    #[error("{}: tensor {name:?} is missing", file.display())]
    Missing { file: PathBuf, name: String },
    #[error("{}: tensor {name:?} is not a parameter of the model (expected {expected})", file.display())]
    Unexpected { file: PathBuf, name: String, expected: String },
    #[error("{}: tensor {name:?} has shape {found:?}, expected {expected}", file.display())]
    Shape { file: PathBuf, name: String, found: Vec<usize>, expected: String },
    #[error("{}: tensor {name:?} has dtype {found}, expected {expected}", file.display())]
    Dtype { file: PathBuf, name: String, found: String, expected: String },
    #[error("{}: tensor {name:?} holds a non-finite value {value} at flat index {index}", file.display())]
    NonFinite { file: PathBuf, name: String, index: usize, value: f64 },
    #[error("{}: metadata {key:?} {problem}", file.display())]
    Metadata { file: PathBuf, key: String, problem: String },
}

/// The largest safetensors header read (the `safetensors` crate's own limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// Bytes of tensor data a safetensors JSON header announces, read by the `safetensors` crate's own
/// header type (which checks that the tensors' `data_offsets` follow each other and match their shapes).
fn data_len(header: &[u8]) -> Result<u64, String> {
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(header).map_err(|e| format!("invalid header: {e}"))?;
    Ok(meta.data_len() as u64)
}

/// A safetensors file read into memory.
pub struct Stored {
    pub path: PathBuf,
    bytes: Vec<u8>,
    /// The file's string metadata (empty when it has none).
    pub metadata: HashMap<String, String>,
}

/// One tensor of a [`Stored`] file.
pub struct Raw<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Little-endian values, possibly unaligned.
    pub bytes: &'a [u8],
}

impl Stored {
    /// Reads and checks a safetensors file, reading no more than its header announces: the 8-byte
    /// header length (at most [`MAX_HEADER`]), the JSON header, then the tensors' bytes up to the largest
    /// `data_offsets` end. A file that announces more than the memory available
    /// ([`crate::system::available`]), ends early or goes on after that is refused without being read
    /// further, so `/dev/zero` or `/dev/urandom` fail at once.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let read_err = |source| CheckpointError::Read { file: path.into(), source };
        let format = |problem: String| CheckpointError::Format { file: path.into(), problem };
        let mut f = crate::read::open_regular(path).map_err(read_err)?;
        let mut len8 = [0u8; 8];
        let got = read_up_to(&mut f, &mut len8).map_err(read_err)?;
        if got < 8 {
            return Err(format(format!("{got} bytes, shorter than the 8-byte header length")));
        }
        let n = u64::from_le_bytes(len8);
        if n > MAX_HEADER {
            return Err(format(format!("header length {n} exceeds {MAX_HEADER} bytes")));
        }
        let mut bytes = len8.to_vec();
        let got = (&mut f).take(n).read_to_end(&mut bytes).map_err(read_err)?;
        if (got as u64) < n {
            return Err(format(format!("truncated: the header announces {n} bytes, the file holds {got}")));
        }
        let data_len = data_len(&bytes[8..]).map_err(format)?;
        let need = 8 + n as u128 + data_len as u128;
        let avail = crate::system::available();
        if need > avail.bytes {
            return Err(format(format!(
                "its header announces {need} bytes, more than the {} bytes available ({})",
                avail.bytes, avail.source
            )));
        }
        let got = (&mut f).take(data_len + 1).read_to_end(&mut bytes).map_err(read_err)?;
        if got as u64 > data_len {
            return Err(format(format!("more bytes than the {need} its header announces")));
        }
        if (got as u64) < data_len {
            return Err(format(format!(
                "truncated: its header announces {need} bytes, the file holds {}",
                8 + n as usize + got
            )));
        }
        SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
        let metadata: std::collections::HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
        // A file that records its digest (a run's checkpoint and state) must still have it.
        if let Some(recorded) = metadata.get(DIGEST_KEY) {
            let sorted: BTreeMap<String, String> = metadata.clone().into_iter().collect();
            let found = digest(&bytes[8 + n as usize..], &sorted);
            if *recorded != found {
                return Err(CheckpointError::Metadata {
                    file: path.into(),
                    key: DIGEST_KEY.into(),
                    problem: format!(
                        "is {recorded} but the content's is {found}: the file was changed after it was written"
                    ),
                });
            }
        }
        Ok(Stored { path: path.into(), bytes, metadata })
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("checked in Stored::read")
    }

    /// Names of the tensors, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.st().names().into_iter().map(String::from).collect();
        v.sort();
        v
    }

    /// The tensor `name`, or [`CheckpointError::Missing`].
    pub fn get<'a>(&'a self, name: &'a str) -> Result<Raw<'a>, CheckpointError> {
        let st = self.st();
        let view =
            st.tensor(name).map_err(|_| CheckpointError::Missing { file: self.path.clone(), name: name.into() })?;
        Ok(Raw { name, dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data() })
    }

    /// The tensor `name` as finite f32 values of the given shape (`None`: any shape).
    pub fn f32_tensor(&self, name: &str, shape: Option<&[usize]>) -> Result<Tensor<f32>, CheckpointError> {
        let raw = self.get(name)?;
        if let Some(s) = shape
            && raw.shape != s
        {
            return Err(CheckpointError::Shape {
                file: self.path.clone(),
                name: name.into(),
                found: raw.shape,
                expected: format!("{s:?}"),
            });
        }
        self.expect_dtype(&raw, Dtype::F32)?;
        let data: Vec<f32> = raw.bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
        self.check_finite(name, data.iter().map(|&v| v as f64))?;
        Ok(Tensor::from_vec(&raw.shape, data))
    }

    /// Fails unless `raw` has dtype `dtype`.
    pub fn expect_dtype(&self, raw: &Raw<'_>, dtype: Dtype) -> Result<(), CheckpointError> {
        if raw.dtype != dtype {
            return Err(CheckpointError::Dtype {
                file: self.path.clone(),
                name: raw.name.into(),
                found: format!("{:?}", raw.dtype),
                expected: format!("{dtype:?}"),
            });
        }
        Ok(())
    }

    /// Fails at the first non-finite value.
    pub fn check_finite(&self, name: &str, values: impl Iterator<Item = f64>) -> Result<(), CheckpointError> {
        for (index, value) in values.enumerate() {
            if !value.is_finite() {
                return Err(CheckpointError::NonFinite { file: self.path.clone(), name: name.into(), index, value });
            }
        }
        Ok(())
    }

    /// The metadata value `key`, or an error saying it is missing.
    pub fn meta(&self, key: &str) -> Result<&str, CheckpointError> {
        self.metadata.get(key).map(String::as_str).ok_or_else(|| CheckpointError::Metadata {
            file: self.path.clone(),
            key: key.into(),
            problem: "is missing".into(),
        })
    }

    /// The metadata value `key` parsed as `V`.
    pub fn meta_parse<V: std::str::FromStr>(&self, key: &str) -> Result<V, CheckpointError> {
        let s = self.meta(key)?;
        s.parse().map_err(|_| CheckpointError::Metadata {
            file: self.path.clone(),
            key: key.into(),
            problem: format!("has value {s:?}, which does not parse"),
        })
    }

    /// Loads tensors named like `net`'s parameters (with `prefix` before each name) into `params`,
    /// checking the exact set of names, shapes, dtype F32 and finiteness. Tensors whose name does not
    /// start with `prefix` are ignored.
    pub fn load_params_into(
        &self,
        net: &Network<f32>,
        prefix: &str,
        params: &mut crate::Params<f32>,
    ) -> Result<(), CheckpointError> {
        let names = net.param_names();
        let expected_list = names.iter().map(|(n, _)| format!("{prefix}{n}")).collect::<Vec<_>>().join(", ");
        for stored in self.names() {
            if stored.starts_with(prefix) && !names.iter().any(|(n, _)| format!("{prefix}{n}") == stored) {
                return Err(CheckpointError::Unexpected {
                    file: self.path.clone(),
                    name: stored,
                    expected: expected_list,
                });
            }
        }
        let mut at = names.iter();
        for layer in params.iter_mut() {
            for t in layer.iter_mut() {
                let (name, shape) = at.next().expect("param_names matches params");
                *t = self.f32_tensor(&format!("{prefix}{name}"), Some(shape))?;
            }
        }
        Ok(())
    }
}

/// Loads a checkpoint's parameters into `net` (all or nothing: `net` is unchanged on error). Every entry a
/// mask of `net` removes must be 0 in the file, as a pruned run writes it; a nonzero there (a mask that is
/// not the one these weights were trained with) is an error naming the mask, the entry and the value.
pub fn load_params(net: &mut Network<f32>, file: &Stored) -> Result<(), CheckpointError> {
    let mut params = net.params.clone();
    file.load_params_into(net, "", &mut params)?;
    for (i, layer) in params.iter().enumerate() {
        if let (Some(keep), Some(w)) = (net.mask(i), layer.first())
            && let Some(j) = (0..keep.len()).find(|&j| !keep[j] && w.data[j] != 0.0)
        {
            let v = w.data[j];
            return Err(CheckpointError::Metadata {
                file: file.path.clone(),
                key: format!("mask.{i}.weight"),
                problem: format!(
                    "removes entry {j} of layer {i}'s weight, but the weight there is {v} (a pruned entry is 0): the mask is not the one these weights were trained with"
                ),
            });
        }
    }
    net.params = params;
    Ok(())
}

/// `(name, tensor)` pairs of a network's parameters (or of anything shaped like them).
pub fn named<'a>(net: &Network<f32>, params: &'a crate::Params<f32>, prefix: &str) -> Vec<(String, &'a Tensor<f32>)> {
    let names = net.param_names();
    names.into_iter().map(|(n, _)| format!("{prefix}{n}")).zip(params.iter().flatten()).collect()
}

/// Writes f32 tensors and metadata to `path` atomically.
///
/// The bytes depend only on the tensors and the metadata (see [`serialize`]), so equal checkpoints are
/// equal files.
pub fn write(
    path: &Path,
    tensors: &[(String, &Tensor<f32>)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    crate::atomic::write(path, &serialize(tensors, metadata))
        .map_err(|source| CheckpointError::Write { file: path.into(), source })
}

/// [`write()`] with the file's digest recorded ([`serialize_with_digest`]), as a run writes its checkpoint.
pub fn write_with_digest(
    path: &Path,
    tensors: &[(String, &Tensor<f32>)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    crate::atomic::write(path, &serialize_with_digest(tensors, metadata))
        .map_err(|source| CheckpointError::Write { file: path.into(), source })
}

/// An f32 tensor as the `safetensors` crate sees it: dtype, shape, little-endian bytes.
struct F32View<'a>(&'a Tensor<f32>);

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        4 * self.0.data.len()
    }
}

/// The metadata key of a file's digest ([`serialize_with_digest`]).
pub const DIGEST_KEY: &str = "digest";

/// The digest of a safetensors file's content: FNV-1a (64 bits) over its tensor data, then each metadata
/// key and value but the digest's own (sorted by key, each followed by a zero byte), written
/// `fnv1a64:` and 16 hex digits. It tells a file changed after it was written (an edited epoch, a flipped
/// byte) from the one a run committed; it is no defence against someone who rewrites the digest too.
pub fn digest(data: &[u8], metadata: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(data);
    for (k, v) in metadata.iter().filter(|(k, _)| *k != DIGEST_KEY) {
        eat(k.as_bytes());
        eat(&[0]);
        eat(v.as_bytes());
        eat(&[0]);
    }
    format!("fnv1a64:{h:016x}")
}

/// [`serialize`], with the file's [`digest`] in its metadata under [`DIGEST_KEY`], which [`Stored::read`]
/// checks: the run's checkpoint and state are written so.
pub fn serialize_with_digest(tensors: &[(String, &Tensor<f32>)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let plain = serialize(tensors, metadata);
    let end = 8 + u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let mut meta = metadata.clone();
    meta.insert(DIGEST_KEY.into(), digest(&plain[end..], metadata));
    serialize(tensors, &meta)
}

/// The safetensors encoding, through `safetensors::serialize`: an 8-byte little-endian header length, a
/// JSON header padded with spaces to a multiple of 8 bytes, then the tensors' bytes in name order.
///
/// The crate lays out the tensors; its header is then written again with every JSON object's keys sorted
/// (`__metadata__` among the tensor names, the fields of a tensor as `data_offsets`, `dtype`, `shape`),
/// so the bytes are those of the files written before the crate did the layout, and are the same in
/// every process: the crate takes the metadata as a `HashMap`, whose order changes from process to
/// process.
pub fn serialize(tensors: &[(String, &Tensor<f32>)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let views = tensors.iter().map(|(name, t)| (name.as_str(), F32View(t)));
    let mut bytes = safetensors::serialize(views, None).expect("f32 tensors whose data matches their shapes");
    let end = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    // serde_json's map keeps its keys sorted (the crate's `preserve_order` feature is off).
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).expect("the crate writes a JSON object");
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialize"));
    }
    let mut json = serde_json::to_vec(&header).expect("JSON serializes");
    json.resize(json.len().next_multiple_of(8), b' ');
    let len = (json.len() as u64).to_le_bytes();
    bytes.splice(..end, len.into_iter().chain(json));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our encoder's bytes read back through the `safetensors` crate, tensors and metadata intact.
    #[test]
    fn serialize_reads_back_through_safetensors() {
        let a = Tensor::from_vec(&[2, 3], vec![1.0f32, -2.5, 3.0, 0.0, 1e-8, 7.0]);
        let b = Tensor::from_vec(&[], vec![0.25f32]);
        let meta: BTreeMap<String, String> = [("spec".to_string(), "1x2x2 > dense(3)".to_string())].into();
        let bytes = serialize(&[("z".into(), &a), ("loss".into(), &b)], &meta);
        assert_eq!(bytes, serialize(&[("loss".into(), &b), ("z".into(), &a)], &meta), "order-independent");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let z = st.tensor("z").unwrap();
        assert_eq!((z.dtype(), z.shape()), (Dtype::F32, &[2usize, 3][..]));
        let back: Vec<f32> = z.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(back, a.data);
        assert_eq!(st.tensor("loss").unwrap().shape(), &[] as &[usize]);
        let (_, m) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["spec"], "1x2x2 > dense(3)");
    }

    /// A file written with its digest reads back; a flipped data byte or an edited metadata value is
    /// refused with one message naming the digest; a file without one reads as before.
    #[test]
    fn digests_catch_changed_files() {
        let dir = std::env::temp_dir().join(format!("cnn-as-mlp-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Tensor::from_vec(&[1, 2], vec![1.0f32, -2.0]);
        let meta: BTreeMap<String, String> = [("epoch".to_string(), "3".to_string())].into();
        let bytes = serialize_with_digest(&[("0.weight".into(), &w)], &meta);
        let file = dir.join("m.safetensors");
        std::fs::write(&file, &bytes).unwrap();
        let st = Stored::read(&file).unwrap();
        assert!(st.metadata[DIGEST_KEY].starts_with("fnv1a64:"));
        // The last data byte: the sign of −2.0.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 0x80;
        std::fs::write(&file, &flipped).unwrap();
        let e = Stored::read(&file).err().expect("a flipped byte").to_string();
        assert!(e.contains("metadata \"digest\"") && e.contains("changed after it was written"), "{e}");
        // The epoch edited in place, same length (3 → 0).
        let text = String::from_utf8_lossy(&bytes).replace("\"epoch\":\"3\"", "\"epoch\":\"0\"");
        std::fs::write(&file, text.as_bytes()).unwrap();
        assert!(Stored::read(&file).is_err(), "an edited epoch");
        std::fs::write(&file, serialize(&[("0.weight".into(), &w)], &meta)).unwrap();
        assert!(Stored::read(&file).is_ok(), "no digest, nothing to check");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The exact bytes: keys sorted (`__metadata__` after names that start with a digit, before lower-case
    /// ones), the header padded with spaces to a multiple of 8, data in name order. Files written before
    /// the crate did the layout have these bytes, so they read and compare as before.
    #[test]
    fn serialize_writes_the_same_bytes_as_before() {
        let w = Tensor::from_vec(&[1, 2], vec![1.0f32, -2.0]);
        let b = Tensor::from_vec(&[1], vec![0.5f32]);
        let meta: BTreeMap<String, String> =
            [("seed", "0"), ("batch", "64"), ("zeta", "z")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let bytes = serialize(&[("0.weight".into(), &w), ("0.bias".into(), &b), ("velocity.0.bias".into(), &b)], &meta);
        let header = concat!(
            r#"{"0.bias":{"data_offsets":[0,4],"dtype":"F32","shape":[1]},"#,
            r#""0.weight":{"data_offsets":[4,12],"dtype":"F32","shape":[1,2]},"#,
            r#""__metadata__":{"batch":"64","seed":"0","zeta":"z"},"#,
            r#""velocity.0.bias":{"data_offsets":[12,16],"dtype":"F32","shape":[1]}}"#,
        );
        let padded = format!("{header:<width$}", width = header.len().next_multiple_of(8));
        let mut expected = (padded.len() as u64).to_le_bytes().to_vec();
        expected.extend(padded.as_bytes());
        for v in [0.5f32, 1.0, -2.0, 0.5] {
            expected.extend(v.to_le_bytes());
        }
        assert_eq!(bytes, expected);
        // No tensors, no metadata: `{}` and six spaces.
        assert_eq!(serialize(&[], &BTreeMap::new()), [&8u64.to_le_bytes()[..], b"{}      "].concat());
    }
}
