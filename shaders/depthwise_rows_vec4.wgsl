// Row reader for `depthwise_conv.wgsl` at stride 1 on rows a multiple of 4 wide: the 16
// inputs around the block are four aligned vec4s, each wholly inside the row or wholly
// padding, so a row costs four vector loads instead of up to 16 scalar ones (about 10%
// faster on lavapipe).

@group(0) @binding(0) var<storage, read_write> input: array<vec4<f32>>;

const CHUNKS: i32 = WIDTH / 4;

// The aligned 4 inputs at `chunk` (columns 4·chunk…4·chunk+3) of `row`, zero outside it.
fn load4(row: Row, chunk: i32) -> vec4<f32> {
    let value = input[row.start / 4 + clamp(chunk, 0, CHUNKS - 1)];
    return select(vec4(0.0), value, row.inside && chunk >= 0 && chunk < CHUNKS);
}

// The chunk before the block's outputs, theirs, and the one after (columns x0 − 4 + k/2 …),
// shifted left until they start at x0.
fn read_row(row: Row) -> RowInputs {
    let first = (row.x0 + KERNEL / 2) / 4 - 1;
    var d = vec4(0.0);
    if (BLOCK == 8) {
        d = load4(row, first + 3);
    }
    var inputs = RowInputs(load4(row, first), load4(row, first + 1), load4(row, first + 2), d);
    for (var s = 0; s < 4 - KERNEL / 2; s++) {
        inputs = shift(inputs);
    }
    return inputs;
}
