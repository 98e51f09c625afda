//! The subset of `onnx.proto` (ONNX IR) the converter writes, as hand-written
//! `prost` messages, and a small graph builder.
//!
//! Field numbers and enum values are those of onnx/onnx.proto (IR version 8 era,
//! stable since). Only the fields used are declared; prost skips unknown fields
//! when decoding, so ONNX files written by other tools still decode for inspection.

use std::collections::HashMap;

use prost::Message;

/// `TensorProto.DataType` values.
pub mod dtype {
    pub const FLOAT: i32 = 1;
    pub const INT8: i32 = 3;
    pub const INT64: i32 = 7;
}

/// `AttributeProto.AttributeType` values.
mod attr_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const INTS: i32 = 7;
}

/// The IR version written (ONNX 1.13+; ORT 1.31 reads up to 11).
pub const IR_VERSION: i64 = 8;
/// The default-domain opset the graphs use (LayerNormalization needs 17).
pub const OPSET: i64 = 17;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(oneof = "DimValue", tags = "1, 2")]
    pub value: Option<DimValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimValue {
    #[prost(int64, tag = "1")]
    Value(i64),
    #[prost(string, tag = "2")]
    Param(String),
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// 0 = DEFAULT (in the file), 1 = EXTERNAL.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// A graph input/output dimension: fixed, or symbolic.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

/// The shared external weight file: every large initializer of every graph lives
/// here once, so the tied embedding used by the encoder and the decoder is stored once.
#[derive(Debug, Default)]
pub struct WeightFile {
    /// File name, relative to the graphs (ONNX `location`).
    pub location: String,
    pub bytes: Vec<u8>,
    /// name → (offset, length, data type, dims)
    entries: HashMap<String, (u64, u64, i32, Vec<i64>)>,
}

/// Alignment of each tensor in the weight file.
const WEIGHT_ALIGN: usize = 64;

impl WeightFile {
    pub fn new(location: &str) -> Self {
        Self {
            location: location.to_owned(),
            ..Self::default()
        }
    }

    /// Byte offset of tensor `name` in the file, if it was added.
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|e| e.0)
    }

    /// Adds (once) a tensor and returns the initializer that references it.
    pub fn tensor(&mut self, name: &str, data_type: i32, dims: &[i64], raw: &[u8]) -> TensorProto {
        let (offset, length) = match self.entries.get(name) {
            Some((o, l, t, d)) => {
                debug_assert!(*t == data_type && d == dims && *l == raw.len() as u64);
                (*o, *l)
            }
            None => {
                let pad = (WEIGHT_ALIGN - self.bytes.len() % WEIGHT_ALIGN) % WEIGHT_ALIGN;
                self.bytes.resize(self.bytes.len() + pad, 0);
                let offset = self.bytes.len() as u64;
                self.bytes.extend_from_slice(raw);
                let length = raw.len() as u64;
                self.entries
                    .insert(name.to_owned(), (offset, length, data_type, dims.to_vec()));
                (offset, length)
            }
        };
        TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.to_owned(),
            raw_data: Vec::new(),
            external_data: vec![
                entry("location", &self.location),
                entry("offset", &offset.to_string()),
                entry("length", &length.to_string()),
            ],
            data_location: 1,
        }
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bytes of i8 values.
pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Dim::Fixed(v) => DimValue::Value(*v),
                                Dim::Named(s) => DimValue::Param((*s).to_owned()),
                            }),
                        })
                        .collect(),
                }),
            }),
        }),
        doc_string: String::new(),
    }
}

/// An attribute for [`Graph::op`].
#[derive(Debug, Clone)]
pub enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    fn proto(&self) -> AttributeProto {
        match self {
            Attr::Int(n, v) => AttributeProto {
                name: (*n).to_owned(),
                i: *v,
                r#type: attr_type::INT,
                ..Default::default()
            },
            Attr::Float(n, v) => AttributeProto {
                name: (*n).to_owned(),
                f: *v,
                r#type: attr_type::FLOAT,
                ..Default::default()
            },
            Attr::Ints(n, v) => AttributeProto {
                name: (*n).to_owned(),
                ints: v.clone(),
                r#type: attr_type::INTS,
                ..Default::default()
            },
        }
    }
}

/// Builds one graph; node and value names are deterministic.
#[derive(Debug)]
pub struct Graph {
    name: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    init_names: HashMap<String, ()>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
    consts: HashMap<Vec<u8>, String>,
}

impl Graph {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            init_names: HashMap::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            counter: 0,
            consts: HashMap::new(),
        }
    }

    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem_type, dims));
        name.to_owned()
    }

    /// Declares `value` as graph output `name` (through an Identity when they differ).
    pub fn output(&mut self, value: &str, name: &str, elem_type: i32, dims: &[Dim]) {
        if value != name {
            self.nodes.push(NodeProto {
                input: vec![value.to_owned()],
                output: vec![name.to_owned()],
                name: format!("{name}_identity"),
                op_type: "Identity".to_owned(),
                attribute: Vec::new(),
            });
        }
        self.outputs.push(value_info(name, elem_type, dims));
    }

    /// Adds an initializer (once per name) and returns its name.
    pub fn initializer(&mut self, t: TensorProto) -> String {
        let name = t.name.clone();
        if self.init_names.insert(name.clone(), ()).is_none() {
            self.initializers.push(t);
        }
        name
    }

    fn inline_const(&mut self, data_type: i32, dims: &[i64], raw: Vec<u8>) -> String {
        let mut key = raw.clone();
        key.extend_from_slice(&data_type.to_le_bytes());
        for d in dims {
            key.extend_from_slice(&d.to_le_bytes());
        }
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = format!("const_{}", self.consts.len());
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.clone(),
            raw_data: raw,
            external_data: Vec::new(),
            data_location: 0,
        });
        self.consts.insert(key, name.clone());
        name
    }

    /// An inline int64 constant of shape `[len]`.
    pub fn const_i64(&mut self, v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.inline_const(dtype::INT64, &[v.len() as i64], raw)
    }

    /// An inline f32 scalar.
    pub fn scalar_f32(&mut self, v: f32) -> String {
        self.inline_const(dtype::FLOAT, &[], v.to_le_bytes().to_vec())
    }

    /// An inline int64 scalar.
    pub fn scalar_i64(&mut self, v: i64) -> String {
        self.inline_const(dtype::INT64, &[], v.to_le_bytes().to_vec())
    }

    /// An inline f32 tensor.
    pub fn const_f32(&mut self, dims: &[i64], v: &[f32]) -> String {
        self.inline_const(dtype::FLOAT, dims, f32_bytes(v))
    }

    /// Adds a node with one output and returns the output's name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.op_named(op_type, inputs, attrs, None)
    }

    /// Like [`Graph::op`], naming the output `out` when given.
    pub fn op_named(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: &[Attr],
        out: Option<&str>,
    ) -> String {
        self.counter += 1;
        let output = out.map_or_else(
            || format!("{}_{}", op_type.to_ascii_lowercase(), self.counter),
            str::to_owned,
        );
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.clone()],
            name: format!("n{}_{}", self.counter, op_type),
            op_type: op_type.to_owned(),
            attribute: attrs.iter().map(Attr::proto).collect(),
        });
        output
    }

    /// The serialised model.
    pub fn finish(self, doc: &str) -> Vec<u8> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            producer_name: "valise-convert".to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            doc_string: doc.to_owned(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: self.name,
                initializer: self.initializers,
                doc_string: String::new(),
                input: self.inputs,
                output: self.outputs,
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            metadata_props: Vec::new(),
        };
        model.encode_to_vec()
    }
}
