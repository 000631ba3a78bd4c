//! A trained model on disk or on the wire: versioned JSON for people and tools, and a
//! compact binary form for shipping the model inside a query plan. Both round-trip
//! bit-identically (thresholds and offset keep every bit).

use crate::{
    Error, Family, FamilyForest, IsolationForest, IsolationForestParams, Node, REST_WEIGHT, Result,
    Tree,
};

/// Format version written by this build and the only one it reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"PFIF";
const FORMAT_NAME: &str = "procforest-iforest";

#[derive(serde::Serialize, serde::Deserialize)]
struct ModelFile {
    format: String,
    format_version: u32,
    n_features: usize,
    max_samples: usize,
    offset: f64,
    params: IsolationForestParams,
    trees: Vec<Tree>,
}

#[derive(serde::Deserialize)]
struct VersionProbe {
    format: Option<String>,
    format_version: Option<u32>,
}

impl IsolationForest {
    /// The model as pretty JSON (format version [`MODEL_FORMAT_VERSION`]).
    pub fn to_json(&self) -> String {
        let file = ModelFile {
            format: FORMAT_NAME.into(),
            format_version: MODEL_FORMAT_VERSION,
            n_features: self.n_features,
            max_samples: self.max_samples,
            offset: self.offset,
            params: self.params.clone(),
            trees: self.trees.clone(),
        };
        serde_json::to_string_pretty(&file).expect("a model always serialises")
    }

    /// Reads a model written by [`IsolationForest::to_json`]; another format version is an error.
    pub fn from_json(text: &str) -> Result<Self> {
        let probe: VersionProbe =
            serde_json::from_str(text).map_err(|e| Error::BadModel(e.to_string()))?;
        if probe.format.as_deref() != Some(FORMAT_NAME) {
            return Err(Error::BadModel(format!(
                "not a {FORMAT_NAME} model (format {:?})",
                probe.format
            )));
        }
        match probe.format_version {
            Some(MODEL_FORMAT_VERSION) => {}
            Some(found) => {
                return Err(Error::UnsupportedVersion {
                    found,
                    supported: MODEL_FORMAT_VERSION,
                });
            }
            None => return Err(Error::BadModel("no format_version".into())),
        }
        let file: ModelFile =
            serde_json::from_str(text).map_err(|e| Error::BadModel(e.to_string()))?;
        let mut model = IsolationForest::from_parts(
            file.n_features,
            file.max_samples,
            file.trees,
            file.offset,
        )?;
        model.params = file.params;
        Ok(model)
    }

    /// The model in a compact binary form (magic, version, parameters as JSON, then the
    /// nodes in little-endian fields).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.trees.len() * 256 * 14);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&MODEL_FORMAT_VERSION.to_le_bytes());
        let params = serde_json::to_vec(&self.params).expect("params serialise");
        put_u64(&mut out, params.len() as u64);
        out.extend_from_slice(&params);
        put_u64(&mut out, self.n_features as u64);
        put_u64(&mut out, self.max_samples as u64);
        out.extend_from_slice(&self.offset.to_bits().to_le_bytes());
        put_u64(&mut out, self.trees.len() as u64);
        for tree in &self.trees {
            put_u64(&mut out, tree.nodes.len() as u64);
            for node in &tree.nodes {
                match node {
                    Node::Leaf { n_samples } => {
                        out.push(0);
                        out.extend_from_slice(&n_samples.to_le_bytes());
                    }
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                        missing_left,
                    } => {
                        out.push(1 + *missing_left as u8);
                        out.extend_from_slice(&feature.to_le_bytes());
                        out.extend_from_slice(&threshold.to_bits().to_le_bytes());
                        out.extend_from_slice(&left.to_le_bytes());
                        out.extend_from_slice(&right.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// Reads a model written by [`IsolationForest::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::after_header(bytes, MAGIC)?;
        let params_len = r.len()?;
        let params: IsolationForestParams = serde_json::from_slice(r.take(params_len)?)
            .map_err(|e| Error::BadModel(format!("parameters: {e}")))?;
        let n_features = r.len()?;
        let max_samples = r.len()?;
        let offset = f64::from_bits(u64::from_le_bytes(r.array()?));
        let n_trees = r.len()?;
        let mut trees = Vec::with_capacity(n_trees.min(1 << 16));
        for _ in 0..n_trees {
            let n_nodes = r.len()?;
            let mut nodes = Vec::with_capacity(n_nodes.min(1 << 20));
            for _ in 0..n_nodes {
                let tag = r.take(1)?[0];
                nodes.push(match tag {
                    0 => Node::Leaf {
                        n_samples: u32::from_le_bytes(r.array()?),
                    },
                    1 | 2 => Node::Split {
                        feature: u32::from_le_bytes(r.array()?),
                        threshold: f64::from_bits(u64::from_le_bytes(r.array()?)),
                        left: u32::from_le_bytes(r.array()?),
                        right: u32::from_le_bytes(r.array()?),
                        missing_left: tag == 2,
                    },
                    other => return Err(Error::BadModel(format!("bad node tag {other}"))),
                });
            }
            trees.push(Tree { nodes });
        }
        r.at_end()?;
        let mut model = IsolationForest::from_parts(n_features, max_samples, trees, offset)?;
        model.params = params;
        Ok(model)
    }

    /// A content hash of the model (SHA-256 of its binary form, hex): equal models,
    /// equal hashes.
    pub fn content_hash(&self) -> String {
        Self::content_hash_of(&self.to_bytes())
    }

    /// [`Self::content_hash`] of a model's bytes ([`Self::to_bytes`]), without decoding
    /// them: for those who hold the bytes already.
    pub fn content_hash_of(bytes: &[u8]) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader past `bytes`' magic and format version, which must be `magic` and
    /// [`MODEL_FORMAT_VERSION`].
    fn after_header(bytes: &'a [u8], magic: &[u8; 4]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != magic {
            return Err(Error::BadModel("not a procforest model (bad magic)".into()));
        }
        let version = u32::from_le_bytes(r.array()?);
        if version != MODEL_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        Ok(r)
    }
    /// Fails unless every byte was read.
    fn at_end(&self) -> Result<()> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            extra => Err(Error::BadModel(format!("{extra} trailing bytes"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::BadModel("truncated model".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn len(&mut self) -> Result<usize> {
        let v = u64::from_le_bytes(self.array()?);
        usize::try_from(v).map_err(|_| Error::BadModel(format!("length {v} too large")))
    }
}

const FAMILIES_MAGIC: &[u8; 4] = b"PFFF";
const FAMILIES_FORMAT_NAME: &str = "procforest-families";

#[derive(serde::Serialize, serde::Deserialize)]
struct FamiliesFile {
    format: String,
    format_version: u32,
    n_features: usize,
    offset: f64,
    rest_weight: f64,
    families: Vec<FamilyFile>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FamilyFile {
    features: Vec<usize>,
    training_scores: Vec<f64>,
    forest: serde_json::Value,
}

impl FamilyForest {
    /// Whether `text` is a model written by [`FamilyForest::to_json`] (by its format name).
    pub fn is_json(text: &str) -> bool {
        serde_json::from_str::<VersionProbe>(text)
            .is_ok_and(|p| p.format.as_deref() == Some(FAMILIES_FORMAT_NAME))
    }

    /// Whether `bytes` are a model written by [`FamilyForest::to_bytes`].
    pub fn is_bytes(bytes: &[u8]) -> bool {
        bytes.starts_with(FAMILIES_MAGIC)
    }

    /// The model as pretty JSON: each family's features, training scores and forest (in
    /// [`IsolationForest::to_json`]'s form).
    pub fn to_json(&self) -> String {
        let file = FamiliesFile {
            format: FAMILIES_FORMAT_NAME.into(),
            format_version: MODEL_FORMAT_VERSION,
            n_features: self.n_features,
            offset: self.offset,
            rest_weight: REST_WEIGHT,
            families: self
                .families
                .iter()
                .map(|f| FamilyFile {
                    features: f.features.clone(),
                    training_scores: f.training.clone(),
                    forest: serde_json::from_str(&f.forest.to_json()).expect("a forest's JSON"),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).expect("a model always serialises")
    }

    /// Reads a model written by [`FamilyForest::to_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        let file: FamiliesFile =
            serde_json::from_str(text).map_err(|e| Error::BadModel(e.to_string()))?;
        if file.format != FAMILIES_FORMAT_NAME {
            return Err(Error::BadModel(format!(
                "not a {FAMILIES_FORMAT_NAME} model"
            )));
        }
        if file.format_version != MODEL_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: file.format_version,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        if file.rest_weight != REST_WEIGHT {
            return Err(Error::BadModel(format!(
                "rest weight {} (this build scores with {REST_WEIGHT})",
                file.rest_weight
            )));
        }
        let families = file
            .families
            .into_iter()
            .map(|f| {
                Ok(Family {
                    features: f.features,
                    training: f.training_scores,
                    forest: IsolationForest::from_json(&f.forest.to_string())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_parts(file.n_features, families, file.offset)
    }

    /// The model in a compact binary form: magic, version, the offset, then per family its
    /// features, training scores and forest ([`IsolationForest::to_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(FAMILIES_MAGIC);
        out.extend_from_slice(&MODEL_FORMAT_VERSION.to_le_bytes());
        put_u64(&mut out, self.n_features as u64);
        out.extend_from_slice(&self.offset.to_bits().to_le_bytes());
        put_u64(&mut out, self.families.len() as u64);
        for family in &self.families {
            put_u64(&mut out, family.features.len() as u64);
            family
                .features
                .iter()
                .for_each(|&f| put_u64(&mut out, f as u64));
            put_u64(&mut out, family.training.len() as u64);
            for score in &family.training {
                out.extend_from_slice(&score.to_bits().to_le_bytes());
            }
            let forest = family.forest.to_bytes();
            put_u64(&mut out, forest.len() as u64);
            out.extend_from_slice(&forest);
        }
        out
    }

    /// Reads a model written by [`FamilyForest::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::after_header(bytes, FAMILIES_MAGIC)?;
        let n_features = r.len()?;
        let offset = f64::from_bits(u64::from_le_bytes(r.array()?));
        let n_families = r.len()?;
        let mut families = Vec::with_capacity(n_families.min(64));
        for _ in 0..n_families {
            let n = r.len()?;
            let features = (0..n).map(|_| r.len()).collect::<Result<Vec<_>>>()?;
            let n = r.len()?;
            let training = (0..n)
                .map(|_| Ok(f64::from_bits(u64::from_le_bytes(r.array()?))))
                .collect::<Result<Vec<_>>>()?;
            let len = r.len()?;
            let forest = IsolationForest::from_bytes(r.take(len)?)?;
            families.push(Family {
                features,
                forest,
                training,
            });
        }
        r.at_end()?;
        Self::from_parts(n_features, families, offset)
    }
}
