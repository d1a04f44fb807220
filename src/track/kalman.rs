//! The constant-velocity Kalman filter ByteTrack keeps per track, in xyah space (centre x,
//! centre y, aspect ratio w/h, height) with their velocities: Ultralytics'
//! `KalmanFilterXYAH`, whose noise scales with the box height so that large and small
//! objects are trusted alike.

/// Process and measurement noise, as fractions of the box height.
const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

type Matrix8 = [[f64; 8]; 8];
type Matrix4 = [[f64; 4]; 4];

/// A track's state estimate: `[x, y, a, h, vx, vy, va, vh]` and its covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanState {
    pub mean: [f64; 8],
    pub covariance: Matrix8,
}

fn diagonal8(std: [f64; 8]) -> Matrix8 {
    let mut m = [[0.0; 8]; 8];
    for (i, s) in std.iter().enumerate() {
        m[i][i] = s * s;
    }
    m
}

impl KalmanState {
    /// A new track at `measurement` (xyah), not yet moving, uncertain in its velocity.
    pub fn initiate(measurement: [f64; 4]) -> Self {
        let h = measurement[3];
        let (p, v) = (STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h);
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&measurement);
        Self {
            mean,
            covariance: diagonal8([
                2.0 * p,
                2.0 * p,
                1e-2,
                2.0 * p,
                10.0 * v,
                10.0 * v,
                1e-5,
                10.0 * v,
            ]),
        }
    }

    /// The box (xyah) the state estimates.
    pub fn xyah(&self) -> [f64; 4] {
        [self.mean[0], self.mean[1], self.mean[2], self.mean[3]]
    }

    /// Advance one frame: position += velocity, and the uncertainty grows.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let (p, v) = (STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h);
        let noise = diagonal8([p, p, 1e-2, p, v, v, 1e-5, v]);
        add_velocity(&mut self.mean);
        // F P Fᵀ with F = [[I, I], [0, I]]: add the velocity rows and columns onto the
        // position ones.
        let c = &mut self.covariance;
        let (position_rows, velocity_rows) = c.split_at_mut(4);
        for (position, velocity) in position_rows.iter_mut().zip(velocity_rows.iter()) {
            for (p, v) in position.iter_mut().zip(velocity) {
                *p += v;
            }
        }
        for row in c.iter_mut() {
            add_velocity(row);
        }
        for (row, noise_row) in c.iter_mut().zip(&noise) {
            for (value, q) in row.iter_mut().zip(noise_row) {
                *value += q;
            }
        }
    }

    /// Correct the estimate with a measured box (xyah).
    pub fn update(&mut self, measurement: [f64; 4]) {
        let h = self.mean[3];
        let p = STD_WEIGHT_POSITION * h;
        let measurement_noise = [p, p, 1e-1, p];
        // S = H P Hᵀ + R, with H taking the first four components.
        let mut s: Matrix4 =
            std::array::from_fn(|i| std::array::from_fn(|j| self.covariance[i][j]));
        for (i, noise) in measurement_noise.iter().enumerate() {
            s[i][i] += noise * noise;
        }
        // Kalman gain K = P Hᵀ S⁻¹, row by row: S Kᵢᵀ = (P Hᵀ)ᵢᵀ (S is symmetric).
        let cholesky = cholesky4(&s);
        let mut gain = [[0.0; 4]; 8];
        for (k_row, p_row) in gain.iter_mut().zip(&self.covariance) {
            *k_row = cholesky_solve4(&cholesky, [p_row[0], p_row[1], p_row[2], p_row[3]]);
        }
        let innovation: [f64; 4] = std::array::from_fn(|i| measurement[i] - self.mean[i]);
        for (m, k_row) in self.mean.iter_mut().zip(&gain) {
            *m += (0..4).map(|j| k_row[j] * innovation[j]).sum::<f64>();
        }
        // P -= K S Kᵀ
        let mut ks = [[0.0; 4]; 8];
        for (ks_row, k_row) in ks.iter_mut().zip(&gain) {
            for (j, value) in ks_row.iter_mut().enumerate() {
                *value = (0..4).map(|l| k_row[l] * s[l][j]).sum();
            }
        }
        for (i, row) in self.covariance.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value -= (0..4).map(|l| ks[i][l] * gain[j][l]).sum::<f64>();
            }
        }
    }
}

/// Position += velocity, on a state or on one row of its covariance.
fn add_velocity(values: &mut [f64; 8]) {
    let (position, velocity) = values.split_at_mut(4);
    for (p, v) in position.iter_mut().zip(velocity.iter()) {
        *p += v;
    }
}

/// Lower-triangular L with L Lᵀ = `s` (symmetric positive definite: a covariance plus
/// strictly positive noise).
fn cholesky4(s: &Matrix4) -> Matrix4 {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            l[i][j] = if i == j {
                (s[i][i] - sum).max(f64::MIN_POSITIVE).sqrt()
            } else {
                (s[i][j] - sum) / l[j][j]
            };
        }
    }
    l
}

/// x with L Lᵀ x = b.
fn cholesky_solve4(l: &Matrix4, b: [f64; 4]) -> [f64; 4] {
    let mut y = [0.0; 4];
    for i in 0..4 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        x[i] = (y[i] - (i + 1..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain matrix products, written out independently of the filter's shortcuts.
    fn product(a: &Matrix8, b: &Matrix8) -> Matrix8 {
        std::array::from_fn(|i| std::array::from_fn(|j| (0..8).map(|k| a[i][k] * b[k][j]).sum()))
    }

    fn transpose(a: &Matrix8) -> Matrix8 {
        std::array::from_fn(|i| std::array::from_fn(|j| a[j][i]))
    }

    #[test]
    fn prediction_is_f_p_f_transposed_plus_the_motion_noise() {
        let mut state = KalmanState::initiate([100.0, 50.0, 0.5, 80.0]);
        state.mean[4] = 3.0;
        state.mean[7] = -1.0;
        state.covariance[0][4] = 0.7;
        state.covariance[4][0] = 0.7;
        let before = state.clone();
        state.predict();

        let f: Matrix8 = std::array::from_fn(|i| {
            std::array::from_fn(|j| if j == i || j == i + 4 { 1.0 } else { 0.0 })
        });
        let expected = product(&product(&f, &before.covariance), &transpose(&f));
        let (p, v) = (80.0 / 20.0, 80.0 / 160.0);
        let noise = [p, p, 1e-2, p, v, v, 1e-5, v];
        for (i, (row, expected_row)) in state.covariance.iter().zip(&expected).enumerate() {
            for (j, (value, expected)) in row.iter().zip(expected_row).enumerate() {
                let q = if i == j { noise[i] * noise[i] } else { 0.0 };
                assert!((value - expected - q).abs() < 1e-9);
            }
        }
        assert_eq!(state.mean[0], 103.0);
        assert_eq!(state.mean[3], 79.0);
    }

    #[test]
    fn update_matches_the_textbook_gain() {
        let mut state = KalmanState::initiate([100.0, 50.0, 0.5, 80.0]);
        state.predict();
        let before = state.clone();
        let z = [104.0, 47.0, 0.52, 82.0];
        state.update(z);

        // K = P Hᵀ (H P Hᵀ + R)⁻¹ by Gauss–Jordan on the 4×4 innovation covariance.
        let p = 80.0 / 20.0;
        let r = [p * p, p * p, 1e-2, p * p];
        let mut s: [[f64; 8]; 4] = std::array::from_fn(|i| {
            std::array::from_fn(|j| match j {
                _ if j == i => before.covariance[i][j] + r[i],
                0..4 => before.covariance[i][j],
                _ if j == 4 + i => 1.0,
                _ => 0.0,
            })
        });
        for col in 0..4 {
            let pivot = s[col][col];
            for value in s[col].iter_mut() {
                *value /= pivot;
            }
            for row in 0..4 {
                if row != col {
                    let factor = s[row][col];
                    let pivot_row = s[col];
                    for (value, pivot_value) in s[row].iter_mut().zip(pivot_row) {
                        *value -= factor * pivot_value;
                    }
                }
            }
        }
        let inverse: [[f64; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| s[i][4 + j]));
        let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - before.mean[i]);
        for i in 0..8 {
            let gain: [f64; 4] = std::array::from_fn(|j| {
                (0..4)
                    .map(|l| before.covariance[i][l] * inverse[l][j])
                    .sum()
            });
            let expected = before.mean[i] + (0..4).map(|j| gain[j] * innovation[j]).sum::<f64>();
            assert!((state.mean[i] - expected).abs() < 1e-9, "mean[{i}]");
        }
        // The measured components became more certain.
        for i in 0..4 {
            assert!(state.covariance[i][i] < before.covariance[i][i]);
        }
    }

    #[test]
    fn a_steadily_moving_box_is_followed_and_its_velocity_learnt() {
        let mut state = KalmanState::initiate([10.0, 200.0, 0.5, 100.0]);
        for frame in 1..40 {
            state.predict();
            state.update([
                10.0 + 6.0 * f64::from(frame),
                200.0 - 2.0 * f64::from(frame),
                0.5,
                100.0,
            ]);
        }
        assert!((state.mean[4] - 6.0).abs() < 0.05, "vx {}", state.mean[4]);
        assert!((state.mean[5] + 2.0).abs() < 0.05, "vy {}", state.mean[5]);
        state.predict();
        assert!((state.mean[0] - 250.0).abs() < 0.5, "x {}", state.mean[0]);
    }
}
