//! The YAML rows of YOLO26n resolved as `parse_model` resolves them, and the refusals.

use super::*;
use serde_json::json;

/// YOLO26n's rows as its checkpoint pickles them.
fn yolo26n() -> Json {
    json!({
        "nc": 80, "scale": "n", "end2end": true, "reg_max": 1,
        "scales": {"n": [0.5, 0.25, 1024], "s": [0.5, 0.5, 1024], "m": [0.5, 1.0, 512],
                   "l": [1.0, 1.0, 512], "x": [1.0, 1.5, 512]},
        "backbone": [
            [-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]],
            [-1, 2, "C3k2", [256, false, 0.25]], [-1, 1, "Conv", [256, 3, 2]],
            [-1, 2, "C3k2", [512, false, 0.25]], [-1, 1, "Conv", [512, 3, 2]],
            [-1, 2, "C3k2", [512, true]], [-1, 1, "Conv", [1024, 3, 2]],
            [-1, 2, "C3k2", [1024, true]], [-1, 1, "SPPF", [1024, 5, 3, true]],
            [-1, 2, "C2PSA", [1024]]],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
            [-1, 2, "C3k2", [512, true]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]], [-1, 2, "C3k2", [256, true]],
            [-1, 1, "Conv", [256, 3, 2]], [[-1, 13], 1, "Concat", [1]],
            [-1, 2, "C3k2", [512, true]], [-1, 1, "Conv", [512, 3, 2]],
            [[-1, 10], 1, "Concat", [1]], [-1, 1, "C3k2", [1024, true, 0.5, true]],
            [[16, 19, 22], 1, "Detect", ["nc"]]]
    })
}

#[test]
fn yolo26n_resolves_as_parse_model_does() {
    let graph = Graph::from_yaml(&yolo26n()).unwrap();
    assert_eq!(graph.nodes.len(), 24);
    assert_eq!(
        (graph.reg_max, graph.end2end, graph.legacy_head),
        (1, true, false)
    );
    assert_eq!(graph.family, "YOLO26");
    assert_eq!(graph.detect_layer(), 23);
    // Width 0.25 of 64, depth 0.5 of 2, the SPPF's shortcut, the last C3k2's attention.
    assert_eq!(
        graph.nodes[0].block,
        Block::Conv {
            out: Some(16),
            kernel: 3,
            stride: 2
        }
    );
    assert_eq!(graph.nodes[2].repeats, Some(1));
    assert_eq!(
        graph.nodes[9].block,
        Block::Sppf {
            out: Some(256),
            kernel: 5,
            n: 3,
            shortcut: true
        }
    );
    assert_eq!(
        graph.nodes[22].block,
        Block::C3k2 {
            out: Some(256),
            c3k: true,
            attn: true,
            shortcut: true
        }
    );
    assert_eq!(
        graph.nodes[23].block,
        Block::Detect {
            nc: Some(80),
            task: Task::Detect
        }
    );
    assert!(graph.is_read_later(4) && graph.is_read_later(22) && !graph.is_read_later(5));
}

#[test]
fn large_scales_force_c3k_and_cap_channels() {
    let mut yaml = yolo26n();
    yaml["scale"] = json!("l");
    let graph = Graph::from_yaml(&yaml).unwrap();
    assert!(matches!(
        graph.nodes[2].block,
        Block::C3k2 { c3k: true, .. }
    ));
    // min(1024, 512) × 1.0, and depth 1.0 keeps two repeats.
    assert!(matches!(
        graph.nodes[8].block,
        Block::C3k2 { out: Some(512), .. }
    ));
    assert_eq!(graph.nodes[8].repeats, Some(2));
}

#[test]
fn repeats_round_half_to_even_as_python_does() {
    let mut yaml = yolo26n();
    yaml["scales"]["n"] = json!([0.25, 0.25, 1024]);
    yaml["backbone"][2] = json!([-1, 6, "C3k2", [256, false, 0.25]]);
    yaml["backbone"][4] = json!([-1, 10, "C3k2", [256, false, 0.25]]);
    let graph = Graph::from_yaml(&yaml).unwrap();
    // round(1.5) = 2 and round(2.5) = 2 in Python.
    assert_eq!(graph.nodes[2].repeats, Some(2));
    assert_eq!(graph.nodes[4].repeats, Some(2));
}

#[test]
fn unknown_blocks_and_task_heads_are_refused_by_name_and_layer() {
    let mut yaml = yolo26n();
    yaml["backbone"][6] = json!([-1, 2, "A2C2f", [512, true, 4]]);
    assert_eq!(
        Graph::from_yaml(&yaml).unwrap_err(),
        GraphError::UnknownModule {
            layer: 6,
            module: "A2C2f".into()
        }
    );
    let message = Graph::from_yaml(&yaml).unwrap_err().to_string();
    assert!(message.contains("layer 6 is `A2C2f`"), "{message}");

    let mut yaml = yolo26n();
    yaml["head"][12] = json!([[16, 19, 22], 1, "Classify", ["nc"]]);
    assert_eq!(
        Graph::from_yaml(&yaml).unwrap_err(),
        GraphError::UnsupportedHead {
            layer: 23,
            module: "Classify".into()
        }
    );
}

#[test]
fn task_heads_take_their_yaml_arguments() {
    let head = |row: serde_json::Value, kpt_shape: Option<serde_json::Value>| {
        let mut yaml = yolo26n();
        yaml["head"][12] = row;
        if let Some(shape) = kpt_shape {
            yaml["kpt_shape"] = shape;
        }
        Graph::from_yaml(&yaml).map(|g| g.task())
    };
    let detect = json!([[16, 19, 22], 1, "Detect", ["nc"]]);
    assert_eq!(head(detect, None), Ok(Task::Detect));
    let segment = json!([[16, 19, 22], 1, "Segment26", ["nc", 16, 256]]);
    assert_eq!(
        head(segment, None),
        Ok(Task::Segment {
            masks: 16,
            yolo26: true
        })
    );
    let pose = json!([[16, 19, 22], 1, "Pose", ["nc", "kpt_shape"]]);
    assert_eq!(
        head(pose.clone(), Some(json!([5, 2]))),
        Ok(Task::Pose {
            keypoints: 5,
            dims: 2,
            yolo26: false
        })
    );
    assert!(matches!(
        head(pose, Some(json!([17, 4]))),
        Err(GraphError::BadRow { layer: 23, .. })
    ));
    let obb = json!([[16, 19, 22], 1, "OBB26", ["nc", 1]]);
    assert_eq!(head(obb, None), Ok(Task::Obb { yolo26: true }));
    let two_angles = json!([[16, 19, 22], 1, "OBB", ["nc", 2]]);
    assert!(matches!(
        head(two_angles, None),
        Err(GraphError::BadRow { layer: 23, .. })
    ));
}

#[test]
fn malformed_rows_are_named() {
    for (row, expected) in [
        (
            json!([-1, 1, "Conv"]),
            "row 3 is not [from, repeats, module, args]",
        ),
        (
            json!([-1, 1, "Conv", ["wide", 3, 2]]),
            "layer 3 (`Conv`): argument 0",
        ),
        (json!([[-1, 30], 1, "Concat", [1]]), "reads layer 30"),
        (
            json!([-1, 0, "Conv", [256, 3, 2]]),
            "row 3 has a repeat count",
        ),
    ] {
        let mut yaml = yolo26n();
        yaml["backbone"][3] = row;
        let message = Graph::from_yaml(&yaml).unwrap_err().to_string();
        assert!(message.contains(expected), "{message}");
    }
    let message = Graph::from_yaml(&json!({"backbone": []}))
        .unwrap_err()
        .to_string();
    assert!(message.contains("no `head` list"), "{message}");
}
