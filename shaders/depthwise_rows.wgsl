// Row reader for `depthwise_conv.wgsl` on any row: inputs are loaded one by one, only as
// many as the block reads (BLOCK + k − 1 at stride 1), each zero outside the image.

@group(0) @binding(0) var<storage, read_write> input: array<f32>;

// Inputs the block reads along a row.
const SPAN: i32 = (BLOCK - 1) * STRIDE + KERNEL;

fn load(row: Row, x: i32) -> f32 {
    let value = input[row.start + clamp(x, 0, WIDTH - 1)];
    return select(0.0, value, row.inside && x >= 0 && x < WIDTH);
}

// The first `count` (a constant once inlined) of the 4 inputs from column `x`; zero after.
fn load_some(row: Row, x: i32, count: i32) -> vec4<f32> {
    var inputs = vec4(0.0);
    if (count > 0) {
        inputs.x = load(row, x);
    }
    if (count > 1) {
        inputs.y = load(row, x + 1);
    }
    if (count > 2) {
        inputs.z = load(row, x + 2);
    }
    if (count > 3) {
        inputs.w = load(row, x + 3);
    }
    return inputs;
}

fn read_row(row: Row) -> RowInputs {
    let x = row.x0;
    return RowInputs(load_some(row, x, SPAN), load_some(row, x + 4, SPAN - 4), load_some(row, x + 8, SPAN - 8), load_some(row, x + 12, SPAN - 12));
}
