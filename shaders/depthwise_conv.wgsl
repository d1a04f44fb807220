// Depthwise 2-D convolution: one k×k filter per channel, zero padding k/2, stride 1 or 2,
// plus bias and a fused activation, on NCHW f32 tensors. The kernel size, stride and
// activation are filled in per variant ({{ name }} placeholders), so the window loops
// unroll and the padding tests become selects. Each invocation computes BLOCK adjacent
// outputs of a row from one pass over the input span they share, so each input value is
// loaded once per row instead of up to k times. One invocation per output value,
// on a 3-D grid (x, y, plane = n·C + c) so no index needs a division: integer division is
// slow on the SIMD lanes of software adapters and costs registers on GPUs.
//
// Every binding is read_write: cubecl allocates tensors from shared buffer pages, and
// wgpu refuses one page bound both read-only and writable in a dispatch.

@group(0) @binding(0) var<storage, read_write> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
// channels, height, width, out_height, out_width
@group(0) @binding(4) var<storage, read_write> params: array<u32>;

const KERNEL: i32 = {{ kernel }};
const STRIDE: i32 = {{ stride }};
const ACTIVATION: u32 = {{ activation }}u;
const BLOCK: i32 = {{ block }};
// Input columns that BLOCK outputs read along a row.
const SPAN: i32 = {{ span }};
const ACT_SILU: u32 = 1u;
const ACT_GELU: u32 = 2u;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): WGSL has no erf builtin.
fn erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}

fn activate(x: f32) -> f32 {
    if (ACTIVATION == ACT_SILU) {
        return x / (1.0 + exp(-x));
    }
    if (ACTIVATION == ACT_GELU) {
        return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
    }
    return x;
}

@compute @workgroup_size({{ tile_x }}, {{ tile_y }}, {{ tile_z }})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let channels = params[0];
    let height = i32(params[1]);
    let width = i32(params[2]);
    let out_height = params[3];
    let out_width = i32(params[4]);
    let ox0 = i32(gid.x) * BLOCK;
    let oy = gid.y;
    let plane = gid.z; // n * channels + c
    if (ox0 >= out_width || oy >= out_height || plane >= arrayLength(&output) / (u32(out_width) * out_height)) {
        return;
    }
    let channel = plane % channels;
    let y0 = i32(oy) * STRIDE - KERNEL / 2;
    let x0 = ox0 * STRIDE - KERNEL / 2;
    let input_base = plane * u32(height * width);
    let weight_base = channel * u32(KERNEL * KERNEL);

    var acc: array<f32, BLOCK>;
    let b = bias[channel];
    for (var o = 0; o < BLOCK; o++) {
        acc[o] = b;
    }
    var span: array<f32, SPAN>;
    for (var ky = 0; ky < KERNEL; ky++) {
        let y = y0 + ky;
        let row = input_base + u32(clamp(y, 0, height - 1) * width);
        let row_inside = y >= 0 && y < height;
        for (var i = 0; i < SPAN; i++) {
            let x = x0 + i;
            let value = input[row + u32(clamp(x, 0, width - 1))];
            span[i] = select(0.0, value, row_inside && x >= 0 && x < width);
        }
        for (var kx = 0; kx < KERNEL; kx++) {
            let w = weight[weight_base + u32(ky * KERNEL + kx)];
            for (var o = 0; o < BLOCK; o++) {
                acc[o] += span[o * STRIDE + kx] * w;
            }
        }
    }
    let out_row = (plane * out_height + oy) * u32(out_width);
    for (var o = 0; o < BLOCK; o++) {
        if (ox0 + o < out_width) {
            output[out_row + u32(ox0 + o)] = activate(acc[o]);
        }
    }
}
