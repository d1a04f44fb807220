// A FocalModulation map (gate or modulator norm, on layer 9's stride-32 grid) coloured and
// blended over the video, drawn by egui's wgpu renderer into the video's rectangle.
//
// Each fragment maps its position in the frame to the grid through the letterbox (the
// padding cropped away), samples the grid bilinearly (cell centres at .5, edges clamped),
// normalises by the map's range and colours it with turbo or viridis: the same arithmetic
// as `attention_maps::colourise` on the CPU. Output is premultiplied alpha, as egui blends.

struct Params {
    // grid = uv * to_grid.xy + to_grid.zw, uv being 0..1 across the frame.
    to_grid: vec4<f32>,
    grid_size: vec2<u32>,
    // 0: turbo, 1: viridis.
    colormap: u32,
    // 1 when the render target stores sRGB (the colour maps are sRGB values).
    srgb_target: u32,
    value_min: f32,
    value_span: f32,
    opacity: f32,
    padding: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;

struct VertexOutput {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle that covers the viewport, which egui sets to the video's rectangle.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOutput {
    let x = f32((index << 1u) & 2u);
    let y = f32(index & 2u);
    var out: VertexOutput;
    out.position = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn value_at(x: u32, y: u32) -> f32 {
    return values[y * params.grid_size.x + x];
}

fn sample_grid(grid: vec2<f32>) -> f32 {
    let last = params.grid_size - vec2<u32>(1u, 1u);
    let f = clamp(grid - vec2<f32>(0.5, 0.5), vec2<f32>(0.0, 0.0), vec2<f32>(last));
    let p0 = vec2<u32>(floor(f));
    let p1 = min(p0 + vec2<u32>(1u, 1u), last);
    let t = f - floor(f);
    let top = mix(value_at(p0.x, p0.y), value_at(p1.x, p0.y), t.x);
    let bottom = mix(value_at(p0.x, p1.y), value_at(p1.x, p1.y), t.x);
    return mix(top, bottom, t.y);
}

// Google's polynomial fit of turbo.
fn turbo(t: f32) -> vec3<f32> {
    let r = 0.1357 + t * (4.5974 - t * (42.3277 - t * (130.5887 - t * (150.5666 - t * 58.1375))));
    let g = 0.0914 + t * (2.1856 + t * (4.8052 - t * (14.0195 - t * (4.2109 + t * 2.7747))));
    let b = 0.1067 + t * (12.5925 - t * (60.1097 - t * (109.0745 - t * (88.5066 - t * 26.8183))));
    return clamp(vec3<f32>(r, g, b), vec3<f32>(0.0), vec3<f32>(1.0));
}

// A degree-6 polynomial fit of matplotlib's viridis.
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.27772733, 0.0054073445, 0.3340998);
    let c1 = vec3<f32>(0.10509304, 1.4046135, 1.3845902);
    let c2 = vec3<f32>(-0.33086183, 0.21484756, 0.09509516);
    let c3 = vec3<f32>(-4.6342306, -5.799101, -19.332441);
    let c4 = vec3<f32>(6.22827, 14.179933, 56.69055);
    let c5 = vec3<f32>(4.776385, -13.745145, -65.35303);
    let c6 = vec3<f32>(-5.435456, 4.6458526, 26.312435);
    let c = c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6)))));
    return clamp(c, vec3<f32>(0.0), vec3<f32>(1.0));
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VertexOutput) -> @location(0) vec4<f32> {
    let grid = in.uv * params.to_grid.xy + params.to_grid.zw;
    var t = 0.0;
    if params.value_span > 0.0 {
        t = clamp((sample_grid(grid) - params.value_min) / params.value_span, 0.0, 1.0);
    }
    var colour = turbo(t);
    if params.colormap == 1u {
        colour = viridis(t);
    }
    if params.srgb_target == 1u {
        colour = srgb_to_linear(colour);
    }
    return vec4<f32>(colour * params.opacity, params.opacity);
}
